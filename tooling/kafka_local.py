"""A local single-node KRaft Apache Kafka broker for development and tests.

Why this exists: the project needs a real broker (faust, SASL, compaction)
on machines with no Docker, so we run Apache Kafka's own jars, fetched once
with Maven from ``scripts/kafka/pom.xml`` into ``.kafka/libs``
(``STOCKROUTE_KAFKA_HOME`` overrides ``.kafka``).

Layout of a broker's data dir (default ``.kafka/data-<port>``)::

    server.properties  log4j2.properties  kafka.pid
    logs/server.log    logs/stdout.log    kraft/ (log.dirs)

CLI: ``python -m tooling.kafka_local up|down|status [--port N] [--sasl] [--fresh]``.
Stdlib only; aiokafka is used, when importable, to prove the broker answers.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
POM = REPO_ROOT / "scripts" / "kafka" / "pom.xml"
HOST = "127.0.0.1"
ADMIN_USER, ADMIN_PASSWORD = "admin", "admin-secret"
DEFAULT_USER, DEFAULT_PASSWORD = "stockroute", "stockroute-secret"
JVM_OPTS = ["-Xmx512m", "-Xms256m", "-Djava.awt.headless=true"]

_children: dict[int, subprocess.Popen[bytes]] = {}

LOG4J2 = """\
status = warn
name = stockroute-kafka-local
shutdownHook = disable
appender.file.type = RollingFile
appender.file.name = FILE
appender.file.append = false
appender.file.fileName = ${sys:kafka.logs.dir}/server.log
appender.file.filePattern = ${sys:kafka.logs.dir}/server.log.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 20MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 3
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.cleaner.name = kafka.log.LogCleaner
logger.cleaner.level = INFO
"""


class KafkaLocalError(RuntimeError):
    """Raised with a one-line, user-facing reason (plus a log tail when useful)."""


@dataclass(frozen=True)
class BrokerStatus:
    """What callers need to connect, or to tell a user why they cannot."""

    running: bool
    pid: int | None
    bootstrap: str
    sasl: bool
    data_dir: Path

    def describe(self) -> str:
        mode = "SASL_PLAINTEXT/PLAIN" if self.sasl else "PLAINTEXT"
        if self.running:
            return f"kafka running: pid {self.pid}, bootstrap {self.bootstrap} ({mode})"
        return f"kafka not running (bootstrap would be {self.bootstrap}, data {self.data_dir})"


def kafka_home() -> Path:
    """The cache folder: overridable so CI or several worktrees can share jars."""
    return Path(os.environ.get("STOCKROUTE_KAFKA_HOME") or REPO_ROOT / ".kafka").resolve()


def default_data_dir(port: int) -> Path:
    """One data dir per port, so a plain and a SASL broker can coexist."""
    return kafka_home() / f"data-{port}"


def _data_dir(port: int, data_dir: Path | None) -> Path:
    # Absolute, because the broker runs with cwd=data and is found by its argv.
    return Path(data_dir).resolve() if data_dir else default_data_dir(port)


def ensure_jars(quiet: bool = False) -> Path:
    """Fetch Kafka's jars once; a stamp of the pom's hash makes a version bump refetch."""
    libs = kafka_home() / "libs"
    stamp = hashlib.sha256(POM.read_bytes()).hexdigest()
    if (libs / ".pom-sha256").is_file() and (libs / ".pom-sha256").read_text() == stamp:
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise KafkaLocalError("mvn not found on PATH: install Maven 3.8+ to fetch the Kafka jars")
    _say(f"fetching Kafka jars with Maven into {libs} ...", quiet)
    libs.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="libs-", dir=libs.parent))
    cmd = [
        mvn,
        "-q",
        "-B",
        "-f",
        str(POM),
        "dependency:copy-dependencies",
        f"-DoutputDirectory={tmp}",
    ]
    started = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0 or not any(tmp.glob("kafka_2.13-*.jar")):
        shutil.rmtree(tmp, ignore_errors=True)
        tail = _last_lines(proc.stdout + proc.stderr, 20)
        raise KafkaLocalError(
            f"mvn failed to fetch the Kafka jars (exit {proc.returncode})\n{tail}"
        )
    (tmp / ".pom-sha256").write_text(stamp)
    shutil.rmtree(libs, ignore_errors=True)
    try:
        tmp.rename(libs)
    except OSError:  # another process won the race; its jars are as good as ours
        shutil.rmtree(tmp, ignore_errors=True)
    _say(f"fetched Kafka jars in {time.monotonic() - started:.1f}s", quiet)
    return libs


def status(port: int = 9092, data_dir: Path | None = None) -> BrokerStatus:
    """Report from the pid file, checked against the live process, so stale files never lie."""
    data = _data_dir(port, data_dir)
    props = data / "server.properties"
    sasl = props.is_file() and "SASL_PLAINTEXT://" in props.read_text()
    pid = _read_pid(data)
    running = pid is not None and _is_our_broker(pid, props)
    return BrokerStatus(running, pid if running else None, f"{HOST}:{port}", sasl, data)


def up(
    port: int = 9092,
    sasl: bool = False,
    fresh: bool = False,
    data_dir: Path | None = None,
    user: str = DEFAULT_USER,
    password: str = DEFAULT_PASSWORD,
    timeout: float = 60.0,
    quiet: bool = False,
) -> BrokerStatus:
    """Start a broker (controller on port+1) and return only once it serves requests.

    Idempotent so scripts and fixtures can call it blindly. In SASL mode the
    broker accepts ``user``/``password`` and the inter-broker ``admin`` user.
    ``fresh`` stops any broker on this data dir and wipes it, for tests that
    must not see old topics. Raises KafkaLocalError with a reason on failure.
    """
    data = _data_dir(port, data_dir)
    _check_credentials(user, password)
    current = status(port, data)
    if current.running and not fresh:
        if current.sasl != sasl:
            raise KafkaLocalError(
                f"{current.describe()}, not in the requested mode: run down first or use fresh"
            )
        # Still starting (e.g. a concurrent `up`)? Then wait for it like a fresh start.
        if not _port_answers(port) and not _wait_ready(
            current.pid or 0, port, sasl, user, password, data, timeout
        ):
            raise KafkaLocalError(f"broker pid {current.pid} is alive but not answering")
        _say(f"already running: {current.describe()}", quiet)
        return current
    if fresh:
        down(port, data, quiet=True)
        _wipe(data)
    java = shutil.which("java")
    if java is None:
        raise KafkaLocalError("java not found on PATH: install a Java 17+ runtime")
    for p in (port, port + 1):
        if not _port_free(p):
            raise KafkaLocalError(f"port {p} on {HOST} is already in use by another process")
    libs = ensure_jars(quiet)

    (data / "logs").mkdir(parents=True, exist_ok=True)
    props = data / "server.properties"
    props.write_text(_server_properties(port, data / "kraft", sasl, user, password))
    (data / "log4j2.properties").write_text(LOG4J2)
    base = [
        java,
        *JVM_OPTS,
        f"-Dlog4j2.configurationFile={data / 'log4j2.properties'}",
        f"-Dkafka.logs.dir={data / 'logs'}",
        "-cp",
        str(libs / "*"),
    ]
    if not (data / "kraft" / "meta.properties").is_file():
        _format_storage(base, props)

    started = time.monotonic()
    with open(data / "logs" / "stdout.log", "wb") as out:  # logs hold this run only
        proc = subprocess.Popen(
            [*base, "kafka.Kafka", str(props)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=data,
            start_new_session=True,
        )
    _children[proc.pid] = proc
    (data / "kafka.pid").write_text(f"{proc.pid}\n")
    if not _wait_ready(proc.pid, port, sasl, user, password, data, timeout):
        exited = proc.poll()
        down(port, data, quiet=True)
        why = (
            f"exited with code {exited}"
            if exited is not None
            else f"did not answer within {timeout:.0f}s"
        )
        raise KafkaLocalError(f"broker on {HOST}:{port} {why}; last log lines:\n{_log_tail(data)}")
    result = status(port, data)
    _say(f"started in {time.monotonic() - started:.1f}s: {result.describe()}", quiet)
    return result


def down(
    port: int = 9092, data_dir: Path | None = None, timeout: float = 30.0, quiet: bool = False
) -> bool:
    """Stop the broker's whole process group (never by name, so other Kafkas survive).

    SIGTERM first so Kafka shuts down cleanly and restarts fast; SIGKILL after
    ``timeout``. Returns whether a broker was running.
    """
    data = _data_dir(port, data_dir)
    current = status(port, data)
    pid = current.pid
    if not current.running or pid is None:
        (data / "kafka.pid").unlink(missing_ok=True)
        _say(f"kafka not running on {HOST}:{port}", quiet)
        return False
    _signal_group(pid, signal.SIGTERM)
    if not _wait_exit(pid, timeout):
        _say(f"broker pid {pid} ignored SIGTERM for {timeout:.0f}s, sending SIGKILL", quiet)
        _signal_group(pid, signal.SIGKILL)
        _wait_exit(pid, 10.0)
    (data / "kafka.pid").unlink(missing_ok=True)
    _children.pop(pid, None)
    _say(f"kafka stopped (pid {pid}, {HOST}:{port})", quiet)
    return True


def _server_properties(port: int, log_dir: Path, sasl: bool, user: str, password: str) -> str:
    cport = port + 1
    client = "SASL_PLAINTEXT" if sasl else "PLAINTEXT"
    props = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.bootstrap.servers": f"{HOST}:{cport}",
        "listeners": f"{client}://{HOST}:{port},CONTROLLER://{HOST}:{cport}",
        "advertised.listeners": f"{client}://{HOST}:{port},CONTROLLER://{HOST}:{cport}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": client,
        "listener.security.protocol.map": f"CONTROLLER:PLAINTEXT,{client}:{client}",
        "log.dirs": str(log_dir),
        "num.partitions": "4",
        "default.replication.factor": "1",
        "min.insync.replicas": "1",
        "auto.create.topics.enable": "false",
        "offsets.topic.num.partitions": "1",
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.num.partitions": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        "log.cleaner.dedupe.buffer.size": "4194304",
        "log.segment.bytes": "16777216",
        "num.network.threads": "2",
        "num.io.threads": "2",
        "num.recovery.threads.per.data.dir": "1",
    }
    if sasl:
        users = {ADMIN_USER: ADMIN_PASSWORD, user: password}
        accounts = " ".join(f'user_{name}="{secret}"' for name, secret in users.items())
        jaas = (
            "org.apache.kafka.common.security.plain.PlainLoginModule required "
            f'username="{ADMIN_USER}" password="{users[ADMIN_USER]}" {accounts};'
        )
        props |= {
            "sasl.enabled.mechanisms": "PLAIN",
            "sasl.mechanism.inter.broker.protocol": "PLAIN",
            "listener.name.sasl_plaintext.plain.sasl.jaas.config": jaas,
        }
    lines = ["# Generated by tooling/kafka_local.py; rewritten on every `up`."]
    return "\n".join([*lines, *(f"{k}={v}" for k, v in props.items())]) + "\n"


def _check_credentials(user: str, password: str) -> None:
    # They land unescaped in a JAAS string inside a .properties file.
    if not re.fullmatch(r"[A-Za-z0-9._-]+", user):
        raise KafkaLocalError(f"invalid SASL user {user!r}: use letters, digits, '.', '_' or '-'")
    if not password or any(c in password for c in '"\\;\n\r'):
        raise KafkaLocalError(
            "invalid SASL password: must be non-empty without quotes, ';' or '\\'"
        )


def _wipe(data: Path) -> None:
    # A mistyped --data-dir must never cost someone their home directory.
    if data.is_dir() and any(data.iterdir()) and not (data / "server.properties").is_file():
        raise KafkaLocalError(f"refusing to wipe {data}: it is not a kafka_local data dir")
    shutil.rmtree(data, ignore_errors=True)


def _format_storage(base: list[str], props: Path) -> None:
    cluster_id = _cluster_id()
    cmd = [
        *base,
        "kafka.tools.StorageTool",
        "format",
        "-t",
        cluster_id,
        "-c",
        str(props),
        "--standalone",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = _last_lines(proc.stdout + proc.stderr, 20)
        raise KafkaLocalError(f"kafka storage format failed (exit {proc.returncode})\n{tail}")


def _cluster_id() -> str:
    # Same shape as Kafka's Uuid.randomUuid(): 22 chars of url-safe base64, no leading '-'.
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


def _wait_ready(
    pid: int, port: int, sasl: bool, user: str, password: str, data: Path, timeout: float
) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return False
        if _port_answers(port) and _serves_requests(port, sasl, user, password, data):
            return True
        time.sleep(0.5)
    return False


def _serves_requests(port: int, sasl: bool, user: str, password: str, data: Path) -> bool:
    try:
        from aiokafka.admin import AIOKafkaAdminClient
    except ImportError:  # stdlib-only fallback: trust the broker's own log line
        log = data / "logs" / "server.log"
        return log.is_file() and "Kafka Server started" in log.read_text(errors="replace")

    async def probe() -> bool:
        auth: dict[str, Any] = {}
        if sasl:
            auth = {
                "security_protocol": "SASL_PLAINTEXT",
                "sasl_mechanism": "PLAIN",
                "sasl_plain_username": user,
                "sasl_plain_password": password,
            }
        admin = AIOKafkaAdminClient(
            bootstrap_servers=f"{HOST}:{port}", request_timeout_ms=5000, **auth
        )
        try:
            await admin.start()
            cluster = await admin.describe_cluster()
            return bool(cluster.get("brokers"))
        finally:
            await admin.close()

    quiet_logger = logging.getLogger("aiokafka")
    level = quiet_logger.level
    quiet_logger.setLevel(logging.CRITICAL)  # refused probes during startup are expected
    try:
        return _run_coroutine(probe())
    except Exception:
        return False
    finally:
        quiet_logger.setLevel(level)


def _run_coroutine(coro: Coroutine[Any, Any, bool]) -> bool:
    # up() may be called from inside a running event loop (faust, pytest-asyncio).
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    result: list[bool] = []
    worker = threading.Thread(target=lambda: result.append(asyncio.run(coro)))
    worker.start()
    worker.join()
    return bool(result and result[0])


def _port_answers(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=1.0):
        return True
    return False


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the JVM does
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def _read_pid(data: Path) -> int | None:
    try:
        return int((data / "kafka.pid").read_text().strip())
    except (OSError, ValueError):
        return None


def _is_our_broker(pid: int, props: Path) -> bool:
    if not _alive(pid):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return True  # no procfs (macOS): a live pid from our pid file is the best we know
    return b"kafka.Kafka" in cmdline and str(props).encode() in cmdline


def _alive(pid: int) -> bool:
    child = _children.get(pid)
    if child is not None:
        return child.poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):  # a zombie is dead, just not yet reaped
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return True


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        if os.getpgid(pid) == pid:  # started with start_new_session: pid leads its group
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)


def _wait_exit(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.2)
    return not _alive(pid)


def _log_tail(data: Path, n: int = 20) -> str:
    parts = []
    for name in ("stdout.log", "server.log"):
        path = data / "logs" / name
        if path.is_file() and path.stat().st_size:
            parts.append(f"--- {path}\n{_last_lines(path.read_text(errors='replace'), n)}")
    return "\n".join(parts) or f"(no log output in {data / 'logs'})"


def _last_lines(text: str, n: int) -> str:
    return "\n".join(text.rstrip().splitlines()[-n:])


def _say(message: str, quiet: bool) -> None:
    if not quiet:
        print(message, flush=True)


def main(argv: list[str] | None = None) -> int:
    """CLI; `status` exits 3 when the broker is not running, so scripts can test it."""
    parser = argparse.ArgumentParser(
        prog="python -m tooling.kafka_local",
        description="Run a local single-node KRaft Kafka broker.",
    )
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument(
        "--port",
        type=int,
        default=9092,
        help="client port; the controller uses port+1 (default 9092)",
    )
    parser.add_argument("--sasl", action="store_true", help="SASL_PLAINTEXT with PLAIN (up only)")
    parser.add_argument("--fresh", action="store_true", help="wipe the data dir first (up only)")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--user", default=DEFAULT_USER)
    parser.add_argument("--password", default=DEFAULT_PASSWORD)
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            up(
                args.port,
                sasl=args.sasl,
                fresh=args.fresh,
                data_dir=args.data_dir,
                user=args.user,
                password=args.password,
                timeout=args.timeout,
            )
        elif args.command == "down":
            down(args.port, args.data_dir)
        else:
            current = status(args.port, args.data_dir)
            print(current.describe())
            return 0 if current.running else 3
    except KafkaLocalError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
