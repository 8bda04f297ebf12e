"""The typed topic registry: topics.yaml (names, keys, partitions, retention) bound to the models
of streams/records.py.

Code refers to `TOPICS.web_orders`, never to a string literal. Each handle is a `Topic[V]`
carrying its value type, so mypy checks what code sends and what a handler receives, and at run
time `encode` refuses a value of another type while `decode` turns bytes into a V or raises
`Rejected` with the reason that goes to dead-letters. Renaming or re-partitioning a topic is a
one-line change in topics.yaml; `Topics` below declares each handle's type, and loading fails
when the two disagree.
"""

from __future__ import annotations

import os
import typing
from dataclasses import dataclass, fields
from functools import cache, cached_property
from pathlib import Path
from typing import Any, Generic, TypeVar

import yaml
from pydantic import BaseModel, TypeAdapter, ValidationError

from streams.codecs import Rejected, describe_validation_error
from streams.records import (
    MODELS,
    BackorderOp,
    BackorderQueue,
    DeadLetter,
    FulfilmentEvent,
    Location,
    LocationOpsMessage,
    OrderCommand,
    OrderEvent,
    PosSale,
    Refund,
    Return,
    RoutedOrder,
    StockAvailability,
    StoreLoad,
    SupplierFeed,
    WebOrder,
)

V = TypeVar("V")

TOPICS_FILE = Path(__file__).parent.parent / "topics.yaml"
# Prepended to every topic name: lets tests (and several tenants of one cluster) run side by
# side on one broker without reading each other's messages. Empty in production.
TOPIC_PREFIX = os.environ.get("STOCKROUTE_TOPIC_PREFIX", "")


@dataclass(frozen=True, eq=False)
class Topic(Generic[V]):
    """One topic: where it is, what its key is, and the one type its values have."""

    handle: str
    name: str
    key: str
    partitions: int
    cleanup: str
    schema: str
    visibility: str
    code: str
    model_name: str
    model: Any  # the value type: a model class or an Annotated union of models
    retention_ms: int | None = None
    # several messages per record when a batch sends many to one partition (streams/bundles.py)
    bundled: bool = False

    @property
    def configs(self) -> dict[str, str]:
        """Broker-side topic configs, as `stockroute topics` creates them."""
        conf = {"cleanup.policy": self.cleanup}
        if self.retention_ms is not None and self.cleanup == "delete":
            conf["retention.ms"] = str(self.retention_ms)
        return conf

    @property
    def compacted(self) -> bool:
        return self.cleanup == "compact"

    @cached_property
    def adapter(self) -> TypeAdapter[V]:
        return TypeAdapter(self.model)

    @cached_property
    def types(self) -> tuple[type[BaseModel], ...]:
        """The concrete model classes a value of this topic may be (several for a union)."""
        base = typing.get_args(self.model)[0] if typing.get_origin(self.model) else self.model
        members = typing.get_args(base) or (base,)
        return tuple(members)

    def decode(self, raw: bytes | None) -> V:
        """Parse and validate in one pass (pydantic's JSON parser); raise Rejected with a reason
        naming each offending field."""
        if raw is None:
            raise Rejected("empty message (tombstone or null value)")
        try:
            return self.adapter.validate_json(raw)
        except ValidationError as exc:
            errors = exc.errors()
            if any(e["type"] == "json_invalid" for e in errors):
                raise Rejected(f"malformed JSON: {errors[0]['msg']}") from None
            if any(e["type"] in ("model_type", "model_attributes_type") for e in errors) and all(
                len(e["loc"]) <= 1 for e in errors
            ):
                raise Rejected("not a JSON object") from None
            raise Rejected(f"invalid {self.model_name}: {describe_validation_error(exc)}") from None

    def encode(self, value: V) -> bytes:
        """The bytes of a value of this topic; anything else is a programming error."""
        if not isinstance(value, self.types):
            raise TypeError(
                f"topic {self.handle} carries {self.model_name}, not {type(value).__name__}"
            )
        return value.__pydantic_serializer__.to_json(value)  # type: ignore[no-any-return]

    def json_schema(self) -> dict[str, Any]:
        return self.adapter.json_schema()


# A handle on a topic whose type is not known statically (loops over all topics).
AnyTopic = Topic[Any]


@dataclass(frozen=True)
class TableSpec:
    name: str
    source: str
    key: str
    value: str


@dataclass(frozen=True)
class Topics:
    """Every topic by handle, with its value type. The field list is the code's view of
    topics.yaml: `load_topics` fails when the file has a handle not declared here (or lacks
    one), or binds a handle to another model than the type written here."""

    locations: Topic[Location]
    pos_sales: Topic[PosSale]
    supplier_feeds: Topic[SupplierFeed]
    web_orders: Topic[WebOrder]
    fulfilment_events: Topic[FulfilmentEvent]
    returns: Topic[Return]
    stock_availability: Topic[StockAvailability]
    routed_orders: Topic[RoutedOrder]
    order_events: Topic[OrderEvent]
    refunds: Topic[Refund]
    store_load: Topic[StoreLoad]
    backorders: Topic[BackorderQueue]
    dead_letters: Topic[DeadLetter]
    location_ops: Topic[LocationOpsMessage]
    order_commands: Topic[OrderCommand]
    backorder_ops: Topic[BackorderOp]
    tables: dict[str, TableSpec]
    replication_factor: int

    def __iter__(self) -> typing.Iterator[AnyTopic]:
        return iter(self.all)

    @cached_property
    def all(self) -> list[AnyTopic]:
        return [getattr(self, f.name) for f in fields(self) if f.name not in _NOT_TOPICS]

    @cached_property
    def by_name(self) -> dict[str, AnyTopic]:
        return {t.name: t for t in self.all}

    @cached_property
    def by_code(self) -> dict[str, AnyTopic]:
        return {t.code: t for t in self.all}


_NOT_TOPICS = {"tables", "replication_factor"}


def declared_models() -> dict[str, Any]:
    """handle -> the value type `Topics` declares for it."""
    hints = typing.get_type_hints(Topics, include_extras=True)
    return {
        name: typing.get_args(hint)[0] for name, hint in hints.items() if name not in _NOT_TOPICS
    }


def load_topics(path: Path = TOPICS_FILE, prefix: str = TOPIC_PREFIX) -> Topics:
    raw: dict[str, Any] = yaml.safe_load(path.read_text())
    declared = declared_models()
    found = set(raw["topics"])
    if found != set(declared):
        raise ValueError(
            f"{path}: topic handles differ from streams/topics.py Topics: "
            f"only in the file {sorted(found - set(declared))}, "
            f"only in code {sorted(set(declared) - found)}"
        )
    specs: dict[str, AnyTopic] = {}
    for handle, t in raw["topics"].items():
        model_name = t["model"]
        if model_name not in MODELS:
            raise ValueError(f"{path}: {handle}: unknown model {model_name!r}")
        if MODELS[model_name] is not declared[handle]:
            raise ValueError(
                f"{path}: {handle} is bound to {model_name} but code declares another type"
            )
        specs[handle] = Topic(
            handle=handle,
            name=prefix + t["name"],
            key=str(t["key"]),
            partitions=int(t["partitions"]),
            cleanup=t["cleanup"],
            schema=t["schema"],
            visibility=t["visibility"],
            code=t["code"],
            model_name=model_name,
            model=MODELS[model_name],
            retention_ms=t.get("retention_ms"),
            bundled=bool(t.get("bundled", False)),
        )
        if specs[handle].bundled and specs[handle].visibility != "internal":
            raise ValueError(f"{path}: {handle}: only internal topics may carry bundles")
    codes = [s.code for s in specs.values()]
    if len(set(codes)) != len(codes):
        raise ValueError(f"{path}: topic codes must be unique")
    tables = {
        name: TableSpec(name=name, source=t["source"], key=str(t["key"]), value=str(t["value"]))
        for name, t in (raw.get("tables") or {}).items()
    }
    return Topics(
        **specs,  # type: ignore[arg-type]
        tables=tables,
        replication_factor=int(raw.get("replication_factor", 1)),
    )


@cache
def topics() -> Topics:
    return load_topics()


TOPICS = topics()


def schemas() -> dict[str, str]:
    """schemas/ as it should be: each topic's JSON Schema (path from topics.yaml -> text)."""
    import json

    return {t.schema: json.dumps(t.json_schema(), indent=2, sort_keys=True) + "\n" for t in TOPICS}
