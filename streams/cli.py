"""The `stockroute` command: local broker, topics, location data, worker, simulator, dashboard."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import Any

from streams.cliargs import HIDDEN, KAFKA_ENV, Parser
from streams.settings import KafkaSettings, WorkerSettings
from streams.topics import TOPICS, AnyTopic, Topic

ROOT = Path(__file__).resolve().parent.parent


class CliError(Exception):
    """A user-facing failure: one line (or one line per bad input record), exit code 2."""

    def __init__(self, message: str, details: list[str] | None = None) -> None:
        super().__init__(message)
        self.details = details or []


WORKER_ENV = """environment (options given on the command line win):
  STOCKROUTE_APP_ID         Faust app id: consumer group, changelog names (default stockroute)
  STOCKROUTE_DATA_DIR       RocksDB dir, one per worker process (default .data/worker)
  STOCKROUTE_WEB_HOST       web server address (default 127.0.0.1)
  STOCKROUTE_WEB_PORT       web server port: /health, /metrics (default 6066)
  STOCKROUTE_STORE          table store: rocksdb:// (default) or memory://
  STOCKROUTE_TABLE_BROWSING 1 enables Faust's /table/ and /router/ views (default 0)
  STOCKROUTE_ROUTING_POLICY routing policy file (default policy/routing.yaml)
  STOCKROUTE_DEDUPE_DAYS    days a repeated stock event_id is recognised (default 7)
  STOCKROUTE_BATCH_MAX      most inputs an agent takes in one batch (default 500)
  STOCKROUTE_BATCH_BUDGET_MS  ms a batch runs before the event loop runs (default 10; 0: never)
  STOCKROUTE_LOG_FORMAT     text (default; colour only on a terminal) or json (one object
                            per line: timestamp, level, logger, message, topic, partition,
                            offset, order_id)
"""


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


def read_locations(path: Path) -> list[Any]:
    """The valid Location records of `path` (a JSON array, one JSON object, or JSON lines);
    CliError naming every bad record (its index) when any is bad, or the file is unreadable."""
    from pydantic import ValidationError

    from streams.codecs import describe_validation_error
    from streams.records import Location

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CliError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise CliError(f"{path}: is a directory, not a JSON file") from None
    except UnicodeDecodeError as exc:
        raise CliError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise CliError(f"{path}: cannot read ({exc.strerror or exc})") from None
    rows: list[tuple[str, Any]] = []  # (where, parsed JSON value)
    problems: list[str] = []
    count = 0  # records in the file, good and bad
    try:
        whole = json.loads(text)
    except json.JSONDecodeError as exc:
        whole = exc
    if isinstance(whole, list):
        rows = [(f"location #{i}", row) for i, row in enumerate(whole)]
        count = len(rows)
    elif isinstance(whole, dict):
        count = 1
        rows = [("location #0", whole)]
    elif not isinstance(whole, json.JSONDecodeError):
        raise CliError(f"{path}: expected a JSON array of locations or JSON lines")
    elif text.lstrip().startswith("["):
        raise CliError(
            f"{path}: malformed JSON at line {whole.lineno} column {whole.colno}: {whole.msg}"
        )
    else:  # JSON lines: each line on its own, so every bad one is reported
        index = 0
        for lineno, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            where = f"location #{index} (line {lineno})"
            index += 1
            count = index
            try:
                rows.append((where, json.loads(line)))
            except json.JSONDecodeError as exc:
                problems.append(f"{path}: {where}: malformed JSON at column {exc.colno}: {exc.msg}")
    locations = []
    for where, row in rows:
        try:
            locations.append(Location.model_validate(row))
        except ValidationError as exc:
            problems.append(f"{path}: {where}: {describe_validation_error(exc)}")
    if problems:
        raise CliError(
            f"{path}: {len(problems)} of {count} locations are invalid; nothing was published",
            problems,
        )
    if not locations:
        raise CliError(f"{path}: no locations in the file; nothing was published")
    return locations


async def load_locations(kafka: KafkaSettings, path: Path) -> int:
    """Validate every location first, then publish them all (nothing half-loaded)."""
    from aiokafka import AIOKafkaProducer

    locations = read_locations(path)
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

    from streams import logs
    from streams.worker import create_worker

    try:
        settings = WorkerSettings.from_env(
            data_dir=Path(args.data_dir) if args.data_dir else None,
            web_port=args.web_port,
            web_host=args.web_host,
        )
        logs.configure(args.loglevel.upper())
    except ValueError as exc:
        raise CliError(f"invalid setting: {exc}") from None
    from streams import state_check

    try:  # before Faust opens the tables: does the local state belong to this cluster?
        state_check.prepare(settings, reset=args.reset_state, loglevel=args.loglevel)
    except state_check.StateMismatchError as exc:
        print(f"stockroute: {exc}", file=sys.stderr)
        return 2
    rt = create_worker(settings)
    # our logging (streams/logs.py), not mode's: no colour codes off a terminal, JSON on demand,
    # and no spinner writing escape codes to stdout
    worker = faust.Worker(rt.app, loglevel=args.loglevel, quiet=True, override_logging=False)
    worker.spinner = None
    worker.execute_from_commandline()
    return 0


def check_worker_env() -> None:
    """The worker's settings and log format from the environment, checked before a worker
    process is started (a bad value is one line here, not a traceback in every restart)."""
    from streams import logs

    try:
        WorkerSettings.from_env()
        logs.log_format()
    except ValueError as exc:
        raise CliError(f"invalid setting: {exc}") from None


LOGLEVELS = ("debug", "info", "warning", "error")


def _worker_options(w: argparse.ArgumentParser) -> None:
    w.add_argument(
        "--web-port",
        type=int,
        default=None,
        metavar="PORT",
        help="web server port: /health, /metrics (default: $STOCKROUTE_WEB_PORT or 6066)",
    )
    w.add_argument(
        "--web-host",
        default=None,
        metavar="HOST",
        help="web server address (default: $STOCKROUTE_WEB_HOST or 127.0.0.1)",
    )
    w.add_argument(
        "--data-dir",
        default=None,
        metavar="DIR",
        help="the worker's RocksDB dir, one per worker process "
        "(default: $STOCKROUTE_DATA_DIR or .data/worker)",
    )
    w.add_argument(
        "--loglevel",
        default="info",
        type=str.lower,
        choices=LOGLEVELS,
        help="lowest level logged (default: info); the format is $STOCKROUTE_LOG_FORMAT",
    )
    w.add_argument(
        "--reset-state",
        action="store_true",
        help="move the local table state aside and rebuild it from the changelogs "
        "(default: only when it does not belong to this cluster; $STOCKROUTE_STATE_MISMATCH)",
    )


def build_parser() -> Parser:
    p = Parser(
        prog="stockroute",
        description=__doc__,
        epilog="Run `stockroute COMMAND --help` for a command's options.\n\n" + KAFKA_ENV,
    )
    sub = p.add_subparsers(dest="cmd", metavar="COMMAND", parser_class=Parser)

    k = sub.add_parser(
        "kafka",
        help="the local single-node KRaft broker (development and tests)",
        description="Start, stop or check a local single-node KRaft broker (Apache Kafka's own "
        "jars, fetched with Maven into .kafka/ on first use; data in .kafka/data-PORT). "
        "`status` exits 0 when it runs, 3 when not.",
    )
    k.add_argument("action", choices=["up", "down", "status"], help="what to do")
    k.add_argument("--port", type=int, default=9092, help="client port (default: 9092)")
    k.add_argument(
        "--sasl", action="store_true", help="a SASL_PLAINTEXT (PLAIN) listener (default: off)"
    )
    k.add_argument(
        "--fresh", action="store_true", help="wipe the broker's data first (default: off)"
    )

    sub.add_parser(
        "topics",
        help="create or verify every topic of topics.yaml",
        description="Create every topic of topics.yaml and the table changelogs that is "
        "missing; verify the partition counts of those that exist (idempotent).",
        epilog=KAFKA_ENV + "\n  STOCKROUTE_APP_ID         app id of the changelog names "
        "(default stockroute)",
    )

    lo = sub.add_parser(
        "locations",
        help="validate and publish location master data",
        description="`load FILE`: validate every location of FILE (a JSON array or JSON "
        "lines of Location records, see schemas/location.json), then publish them all to the "
        "locations topic. Any invalid record: each is reported with its index, nothing is "
        "published, exit code 2.",
        epilog=KAFKA_ENV,
    )
    lo.add_argument("action", choices=["load"], help="what to do")
    lo.add_argument("file", type=Path, help="JSON array or JSON lines of Location records")

    w = sub.add_parser(
        "worker",
        help="run a Faust worker (restarted in place when it asks to)",
        description="Run a Faust worker with every agent. It runs in a child process that is "
        "started again when it exits asking to re-read its input in order (exit code 75); "
        "SIGINT/SIGTERM stop it. Several workers side by side need distinct --data-dir and "
        "--web-port. GET /health answers 200 once it is ready; GET /metrics serves its "
        "Prometheus metrics.",
        epilog=WORKER_ENV + "\n" + KAFKA_ENV,
    )
    _worker_options(w)
    # internal: the supervised process itself (no help: not listed)
    _worker_options(sub.add_parser(HIDDEN, description="internal: see `worker`"))

    sub.add_parser(
        "schemas",
        help="regenerate schemas/*.json from streams/records.py",
        description="Write one JSON Schema per topic of topics.yaml into schemas/, generated "
        "from the models of streams/records.py.",
    )
    up = sub.add_parser(
        "upgrade",
        help="move stock from the SKU-partitioned layout (before 2026-11) to the location owner's",
        description="With every worker stopped and after `stockroute topics`: copy each stock "
        "record of the old `stock` changelog into its location's partition of the "
        "`location_stock` changelog, and re-send the ops the old agents had not consumed to "
        "stockroute-location-ops (tooling/upgrade.py). Refuses to run twice.",
    )
    up.add_argument(
        "--dry-run", action="store_true", help="count what would move, write nothing (default: off)"
    )
    sub.add_parser("simulate", help="run the simulated retailer (see `simulate --help`)")
    sub.add_parser("dashboard", help="run the planner dashboard (see `dashboard --help`)")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # simulate and dashboard own their options: hand them everything after the sub-command
    if argv[:1] == ["simulate"]:
        from sim.runner import main as sim_main

        return sim_main(argv[1:])
    if argv[:1] == ["dashboard"]:
        from dashboard.serve import main as dash_main

        return dash_main(argv[1:])
    p = build_parser()
    args = p.parse_args(argv)
    if args.cmd is None:
        p.print_help()
        return 0
    try:
        kafka = KafkaSettings.from_env()
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

            check_worker_env()
            return supervise_worker(argv[1:])
        if args.cmd == HIDDEN:
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
        for line in exc.details:
            print(f"stockroute: {line}", file=sys.stderr)
        print(f"stockroute: {exc}", file=sys.stderr)
        return 2
    return 1


if __name__ == "__main__":
    sys.exit(main())
