"""Topic handles built from topics.yaml, the single source of topic names and shapes.

Code refers to `TOPICS.web_orders.name`, never to a string literal, so renaming or
re-partitioning a topic is a one-line change in topics.yaml.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

TOPICS_FILE = Path(__file__).parent.parent / "topics.yaml"
# Prepended to every topic name: lets tests (and several tenants of one cluster) run side by
# side on one broker without reading each other's messages. Empty in production.
TOPIC_PREFIX = os.environ.get("STOCKROUTE_TOPIC_PREFIX", "")


@dataclass(frozen=True)
class TopicSpec:
    handle: str
    name: str
    key: str
    partitions: int
    cleanup: str
    schema: str
    visibility: str
    code: str
    retention_ms: int | None = None

    @property
    def configs(self) -> dict[str, str]:
        """Broker-side topic configs, as `stockroute topics` creates them."""
        conf = {"cleanup.policy": self.cleanup}
        if self.retention_ms is not None and self.cleanup == "delete":
            conf["retention.ms"] = str(self.retention_ms)
        return conf


@dataclass(frozen=True)
class TableSpec:
    name: str
    source: str
    key: str


class Topics:
    """Attribute access to every TopicSpec by handle (TOPICS.pos_sales)."""

    def __init__(self, specs: dict[str, TopicSpec], tables: dict[str, TableSpec], rf: int) -> None:
        self._specs = specs
        self.tables = tables
        self.replication_factor = rf
        self.by_name = {s.name: s for s in specs.values()}
        self.by_code = {s.code: s for s in specs.values()}

    def __getattr__(self, handle: str) -> TopicSpec:
        try:
            return self._specs[handle]
        except KeyError:
            raise AttributeError(f"topics.yaml has no topic handle {handle!r}") from None

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._specs.values())


def load_topics(path: Path = TOPICS_FILE, prefix: str = TOPIC_PREFIX) -> Topics:
    raw: dict[str, Any] = yaml.safe_load(path.read_text())
    specs = {
        handle: TopicSpec(
            handle=handle,
            name=prefix + t["name"],
            key=str(t["key"]),
            partitions=int(t["partitions"]),
            cleanup=t["cleanup"],
            schema=t["schema"],
            visibility=t["visibility"],
            code=t["code"],
            retention_ms=t.get("retention_ms"),
        )
        for handle, t in raw["topics"].items()
    }
    codes = [s.code for s in specs.values()]
    if len(set(codes)) != len(codes):
        raise ValueError(f"{path}: topic codes must be unique")
    tables = {
        name: TableSpec(name=name, source=t["source"], key=str(t["key"]))
        for name, t in (raw.get("tables") or {}).items()
    }
    return Topics(specs, tables, int(raw.get("replication_factor", 1)))


@cache
def topics() -> Topics:
    return load_topics()


TOPICS = topics()
