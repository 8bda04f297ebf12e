"""Sending the store app's messages: one Kafka producer per app process, or a recorder.

Why a thread with its own event loop: Streamlit runs page scripts synchronously, while
aiokafka is asyncio. One producer, started on first use and kept (held in `st.cache_resource`),
serves every session; `send` blocks until the broker acknowledged the message (acks=all), so
the page can say "sent" truthfully, or show why not. Keys and topic names come from
topics.yaml handles, like every other producer of the project.

`RecordingPublisher` keeps the messages in memory instead (fixture mode, AppTest).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from streams.settings import KafkaSettings
from streams.topics import TOPICS


class PublishError(Exception):
    """The message could not be handed to Kafka; the text is for the page."""


class Publisher(Protocol):
    def send(self, handle: str, key: str, value: Mapping[str, Any]) -> None: ...


@dataclass(frozen=True)
class Sent:
    topic: str
    key: str
    value: dict[str, Any]


class RecordingPublisher:
    """Keeps what would have been sent (fixture mode and tests)."""

    def __init__(self) -> None:
        self.sent: list[Sent] = []
        self._lock = threading.Lock()

    def send(self, handle: str, key: str, value: Mapping[str, Any]) -> None:
        with self._lock:
            self.sent.append(Sent(getattr(TOPICS, handle).name, key, dict(value)))


class KafkaPublisher:
    """A producer on a private event loop thread; `send` waits for the acknowledgement."""

    def __init__(self, settings: KafkaSettings | None = None, timeout_s: float = 15.0) -> None:
        self.settings = settings or KafkaSettings.from_env()
        self.timeout_s = timeout_s
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="stockroute-store-producer", daemon=True
        )
        self._thread.start()
        self._producer: Any = None
        self._lock = threading.Lock()

    async def _ensure(self) -> Any:
        if self._producer is None:
            from aiokafka import AIOKafkaProducer

            producer = AIOKafkaProducer(
                **self.settings.aiokafka_kwargs(),
                acks="all",
                enable_idempotence=True,
                client_id="stockroute-store-app",
                request_timeout_ms=int(self.timeout_s * 1000),
            )
            try:
                await asyncio.wait_for(producer.start(), timeout=self.timeout_s)
            except BaseException:
                await producer.stop()
                raise
            self._producer = producer
        return self._producer

    async def _send(self, topic: str, key: bytes, value: bytes) -> None:
        producer = await self._ensure()
        try:
            await producer.send_and_wait(topic, key=key, value=value)
        except BaseException:
            # a broken connection: start a fresh producer next time
            self._producer = None
            await producer.stop()
            raise

    def send(self, handle: str, key: str, value: Mapping[str, Any]) -> None:
        topic = getattr(TOPICS, handle).name
        coro = self._send(topic, key.encode("utf-8"), orjson.dumps(dict(value)))
        with self._lock:
            future = asyncio.run_coroutine_threadsafe(coro, self._loop)
            try:
                future.result(self.timeout_s + 5)
            except (TimeoutError, FutureTimeout):
                future.cancel()
                raise PublishError(
                    f"Kafka at {self.settings.bootstrap} did not acknowledge in time; "
                    "nothing was confirmed, try again"
                ) from None
            except Exception as exc:  # noqa: BLE001 - any failure is shown on the page
                raise PublishError(
                    f"could not send to {topic} at {self.settings.bootstrap}: "
                    f"{type(exc).__name__}: {exc}"
                ) from None

    def close(self) -> None:
        async def stop() -> None:
            if self._producer is not None:
                await self._producer.stop()
                self._producer = None

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
