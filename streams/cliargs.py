"""Command-line parsing shared by `stockroute` and its sub-commands that own their options
(`simulate`): one-line usage errors with exit code 2, and the environment each documents."""

from __future__ import annotations

import argparse
import textwrap
from typing import Any, NoReturn

__all__ = ["HIDDEN", "KAFKA_ENV", "Parser"]

HIDDEN = "worker-process"  # internal sub-commands, never listed

KAFKA_ENV = """environment (every command that talks to Kafka):
  KAFKA_BOOTSTRAP           brokers, host:port[,...] (default 127.0.0.1:9092)
  KAFKA_SECURITY_PROTOCOL   PLAINTEXT (default), SASL_PLAINTEXT, SASL_SSL or SSL
  KAFKA_SASL_MECHANISM      SASL mechanism (default PLAIN)
  KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD   SASL credentials
  KAFKA_SSL_CAFILE, KAFKA_SSL_CERTFILE, KAFKA_SSL_KEYFILE   TLS trust and client certificate
  STOCKROUTE_TOPIC_PREFIX   prefix of every topic name (default empty)"""


class Parser(argparse.ArgumentParser):
    """argparse with usage errors on one line (`stockroute worker: error: ...`), exit code 2,
    and raw help text (the environment tables keep their layout)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        if kwargs.get("description"):
            kwargs["description"] = textwrap.fill(" ".join(kwargs["description"].split()), 88)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        message = message.replace(f"{HIDDEN!r}, ", "")  # internal commands stay unlisted
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")
