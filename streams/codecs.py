"""The dead-letter envelope and the reasons it carries.

Topics decode and encode their own values (streams/topics.py Topic); what does not decode is
`Rejected` with a reason, and keeps its original bytes in the dead-letter built here.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime

from pydantic import ValidationError

from streams.records import DeadLetter


class Rejected(Exception):
    """An input message that cannot be applied; `reason` goes to dead-letters verbatim."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def describe_validation_error(exc: ValidationError) -> str:
    """One line naming each offending field, e.g. `lines.0.qty: Input should be greater than 0`."""
    parts = []
    for err in exc.errors(include_url=False)[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "message"
        parts.append(f"{where}: {err['msg']}")
    more = len(exc.errors()) - 5
    if more > 0:
        parts.append(f"(+{more} more)")
    return "; ".join(parts)


def now() -> datetime:
    return datetime.now(UTC)


def dead_letter(
    *, topic: str, partition: int, offset: int, key: bytes | None, raw: bytes | None, error: str
) -> DeadLetter:
    """Keep the original bytes: as text when UTF-8, else base64 (raw_encoding says which)."""
    data = raw or b""
    try:
        text, encoding = data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        text, encoding = base64.b64encode(data).decode("ascii"), "base64"
    key_text = None
    if key is not None:
        key_text = key.decode("utf-8", errors="backslashreplace")
    return DeadLetter(
        source_topic=topic,
        partition=partition,
        offset=offset,
        key=key_text,
        raw=text,
        raw_encoding=encoding,  # type: ignore[arg-type]
        error=error,
        rejected_at=now(),
    )
