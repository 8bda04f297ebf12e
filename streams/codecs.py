"""Bytes in, records out; records in, bytes out; and the dead-letter envelope.

Every agent consumes raw bytes and decodes here, so a message that does not parse keeps its
original bytes and lands in dead-letters instead of crashing the stream.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError

from streams.records import DeadLetter

M = TypeVar("M", bound=BaseModel)


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


def decode(model: type[M], raw: bytes | None) -> M:
    """Parse and validate in one pass (pydantic's JSON parser); raise Rejected with a reason."""
    if raw is None:
        raise Rejected("empty message (tombstone or null value)")
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        if any(e["type"] == "json_invalid" for e in exc.errors()):
            raise Rejected(f"malformed JSON: {exc.errors()[0]['msg']}") from None
        if any(e["type"] == "model_type" and not e["loc"] for e in exc.errors()):
            raise Rejected("not a JSON object") from None
        raise Rejected(f"invalid {model.__name__}: {describe_validation_error(exc)}") from None


def dumps(value: BaseModel | dict[str, Any]) -> bytes:
    if isinstance(value, BaseModel):
        return value.__pydantic_serializer__.to_json(value, exclude_none=False)
    return orjson.dumps(value)


def loads(raw: bytes) -> Any:
    return orjson.loads(raw)


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
