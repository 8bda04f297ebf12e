"""How Stockroute's processes log: plain text (colour only on a terminal) or one JSON object
per line (`STOCKROUTE_LOG_FORMAT=json`), with the input message being processed.

The processing loop calls `set_message` for every input (streams/loop.py, through
Runtime.observe), so a record logged while an agent handles a message carries its topic,
partition, offset and, on order-keyed topics, its order_id (a context variable: each agent runs
in its own task, so a timer's records never carry an agent's message).

Known transients are lowered, not hidden (TransientFilter): aiokafka logs
`GroupCoordinatorNotAvailableError` as an ERROR while the broker elects the group coordinator
at every normal start (and retries by itself); during the first COORDINATOR_GRACE_S of a process
such records are logged at INFO, as are mode's "Timer ... is overlapping" warnings (a busy event
loop, not a fault).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import IO, Any

__all__ = [
    "FORMATS",
    "JsonFormatter",
    "TextFormatter",
    "TransientFilter",
    "configure",
    "current_message",
    "set_message",
]

FORMAT_ENV = "STOCKROUTE_LOG_FORMAT"
FORMATS = ("text", "json")
COORDINATOR_GRACE_S = 120.0
MESSAGE_FIELDS = ("topic", "partition", "offset", "order_id")

_message: ContextVar[dict[str, Any] | None] = ContextVar("stockroute_message", default=None)


def set_message(topic: str, partition: int, offset: int, order_id: str | None = None) -> None:
    """The input message the current task is processing (shown by every record it logs)."""
    _message.set({"topic": topic, "partition": partition, "offset": offset, "order_id": order_id})


def current_message() -> dict[str, Any] | None:
    return _message.get()


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    """topic/partition/offset/order_id of a record: the current message's, overridden by
    `extra=` values given to the log call."""
    out = {k: v for k, v in (_message.get() or {}).items() if v is not None}
    for k in MESSAGE_FIELDS:
        v = getattr(record, k, None)
        if v is not None:
            out[k] = v
    return out


class JsonFormatter(logging.Formatter):
    """One JSON object per record: timestamp (UTC, ISO-8601), level, logger, message, the
    message fields where known, exception text when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        out.update(_fields(record))
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, default=str, ensure_ascii=False)


_COLOURS = {
    logging.DEBUG: "\x1b[2m",
    logging.INFO: "",
    logging.WARNING: "\x1b[33m",
    logging.ERROR: "\x1b[31m",
    logging.CRITICAL: "\x1b[1;31m",
}


class TextFormatter(logging.Formatter):
    """`[time] [pid] [LEVEL] logger: message (topic:partition@offset order=...)`; the level
    is coloured only when `colour` (a terminal)."""

    def __init__(self, colour: bool = False) -> None:
        super().__init__("[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s")
        self.colour = colour

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        f = _fields(record)
        if "topic" in f:
            where = f"{f['topic']}:{f.get('partition')}@{f.get('offset')}"
            if "order_id" in f:
                where += f" order={f['order_id']}"
            first, nl, rest = text.partition("\n")
            text = f"{first} ({where}){nl}{rest}"
        if self.colour:
            start = _COLOURS.get(record.levelno, "")
            if start:
                text = text.replace(
                    f"[{record.levelname}]", f"[{start}{record.levelname}\x1b[0m]", 1
                )
        return text


class TransientFilter(logging.Filter):
    """Lowers two known non-errors to INFO:

    - aiokafka's ERROR for a group coordinator not available yet (the broker is still electing
      it; aiokafka retries by itself), during the first `grace_s` seconds of the process;
    - mode's WARNING that one of Faust's own timers (the commit livelock detector) ran longer
      than its interval: the event loop was busy, e.g. folding the opening stock of a demo.
      That is load, not a fault; /metrics shows it where it matters (consumer lag).
    """

    NEEDLE = "GroupCoordinatorNotAvailableError"

    def __init__(self, grace_s: float = COORDINATOR_GRACE_S) -> None:
        super().__init__()
        self.until = time.monotonic() + grace_s

    def _transient(self, record: logging.LogRecord) -> bool:
        if record.name == "mode.timers":
            return "is overlapping" in record.msg
        return (
            record.name.startswith("aiokafka")
            and time.monotonic() < self.until
            and self.NEEDLE in record.getMessage()
        )

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.INFO and self._transient(record):
            record.levelno, record.levelname = logging.INFO, "INFO"
            # lowered below the configured level: not shown at all
            return logging.getLogger().isEnabledFor(logging.INFO)
        return True


def log_format(env: dict[str, str] | None = None) -> str:
    """`text` or `json` from STOCKROUTE_LOG_FORMAT (anything else is an error the CLI reports)."""
    value = (os.environ if env is None else env).get(FORMAT_ENV, "text").strip().lower() or "text"
    if value not in FORMATS:
        raise ValueError(f"{FORMAT_ENV} must be one of {', '.join(FORMATS)}, not {value!r}")
    return value


def configure(
    level: int | str = logging.INFO,
    *,
    fmt: str | None = None,
    stream: IO[str] | None = None,
) -> logging.Handler:
    """Send the root logger's records to `stream` (stderr) in `fmt` (STOCKROUTE_LOG_FORMAT):
    replaces any handler the root logger had. Returns the handler."""
    stream = sys.stderr if stream is None else stream
    fmt = log_format() if fmt is None else fmt
    handler = logging.StreamHandler(stream)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        try:
            tty = stream.isatty()
        except (AttributeError, ValueError):
            tty = False
        handler.setFormatter(TextFormatter(colour=tty))
    # the filter sits on the handler (a logger's own filters do not see its children's records)
    handler.addFilter(TransientFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    return handler
