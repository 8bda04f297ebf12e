"""Settings from the environment, shared by the worker, the CLI, the simulator and the dashboard.

One place reads the Kafka connection and security settings so every client of the cluster
(Faust worker, raw aiokafka consumers, admin client) connects the same way.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"


@dataclass(frozen=True)
class KafkaSettings:
    """How to reach Kafka. SASL_PLAINTEXT / SASL_SSL / SSL come from KAFKA_* variables."""

    bootstrap: str = DEFAULT_BOOTSTRAP
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str = "PLAIN"
    sasl_username: str | None = None
    sasl_password: str | None = None
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> KafkaSettings:
        e = os.environ if env is None else env
        return cls(
            bootstrap=e.get("KAFKA_BOOTSTRAP", DEFAULT_BOOTSTRAP),
            security_protocol=e.get("KAFKA_SECURITY_PROTOCOL", "PLAINTEXT").upper(),
            sasl_mechanism=e.get("KAFKA_SASL_MECHANISM", "PLAIN").upper(),
            sasl_username=e.get("KAFKA_SASL_USERNAME"),
            sasl_password=e.get("KAFKA_SASL_PASSWORD"),
            ssl_cafile=e.get("KAFKA_SSL_CAFILE"),
            ssl_certfile=e.get("KAFKA_SSL_CERTFILE"),
            ssl_keyfile=e.get("KAFKA_SSL_KEYFILE"),
        )

    def ssl_context(self) -> ssl.SSLContext | None:
        if "SSL" not in self.security_protocol:
            return None
        ctx = ssl.create_default_context(cafile=self.ssl_cafile)
        if self.ssl_certfile:
            ctx.load_cert_chain(self.ssl_certfile, self.ssl_keyfile)
        return ctx

    def aiokafka_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for any aiokafka client (producer, consumer, admin)."""
        kw: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap,
            "security_protocol": self.security_protocol,
        }
        if self.security_protocol.startswith("SASL"):
            kw.update(
                sasl_mechanism=self.sasl_mechanism,
                sasl_plain_username=self.sasl_username,
                sasl_plain_password=self.sasl_password,
            )
        ctx = self.ssl_context()
        if ctx is not None:
            kw["ssl_context"] = ctx
        return kw


@dataclass(frozen=True)
class WorkerSettings:
    """Per-process worker settings; several workers on one host need distinct ports and dirs."""

    app_id: str = "stockroute"
    data_dir: Path = Path(".data/worker")
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    store: str = "rocksdb://"
    table_browsing: bool = False
    routing_policy: Path = Path(__file__).parent.parent / "policy" / "routing.yaml"
    dedupe_days: int = 7  # how long a repeated event_id is recognised (domain/dedupe.py)
    batch_max: int = 500  # inputs per batch of a batched agent (streams/loop.py)
    batch_budget_ms: float = 10.0  # a batch lets the event loop run this often (streams/loop.py)
    kafka: KafkaSettings = field(default_factory=KafkaSettings)

    @classmethod
    def from_env(cls, **overrides: Any) -> WorkerSettings:
        e = os.environ
        base = cls(
            app_id=e.get("STOCKROUTE_APP_ID", "stockroute"),
            data_dir=Path(e.get("STOCKROUTE_DATA_DIR", ".data/worker")),
            web_host=e.get("STOCKROUTE_WEB_HOST", "127.0.0.1"),
            web_port=int(e.get("STOCKROUTE_WEB_PORT", "6066")),
            store=e.get("STOCKROUTE_STORE", "rocksdb://"),
            table_browsing=e.get("STOCKROUTE_TABLE_BROWSING", "0") == "1",
            routing_policy=Path(e.get("STOCKROUTE_ROUTING_POLICY", str(cls.routing_policy))),
            dedupe_days=int(e.get("STOCKROUTE_DEDUPE_DAYS", "7")),
            batch_max=int(e.get("STOCKROUTE_BATCH_MAX", "500")),
            batch_budget_ms=float(e.get("STOCKROUTE_BATCH_BUDGET_MS", "10")),
            kafka=KafkaSettings.from_env(),
        )
        values = {**base.__dict__, **{k: v for k, v in overrides.items() if v is not None}}
        return cls(**values)
