"""A real local KRaft broker in SASL_PLAINTEXT/PLAIN mode, driven by aiokafka.

Needs Java 17+ and Maven (the first run fetches Kafka's jars into .kafka/libs).
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import socket
from collections.abc import Iterator

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.conn import create_conn
from aiokafka.errors import KafkaConnectionError, SaslAuthenticationFailed

from tooling import kafka_local
from tooling.kafka_local import BrokerStatus

pytestmark = pytest.mark.integration

USER, PASSWORD = "stockroute", "stockroute-secret"
SASL = {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN"}


def _free_port_pair(preferred: int = 19392) -> int:
    """The broker needs port and port+1 (controller); prefer the documented one."""

    def free(port: int) -> bool:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
            return True

    for port in range(preferred, preferred + 200, 2):
        if free(port) and free(port + 1):
            return port
    raise RuntimeError("no free port pair for a test broker")


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerStatus]:
    if shutil.which("java") is None or shutil.which("mvn") is None:
        pytest.skip("needs java and mvn on PATH to run a local Kafka broker")
    port = _free_port_pair()
    data_dir = tmp_path_factory.mktemp("kafka-sasl")
    started = kafka_local.up(
        port, sasl=True, fresh=True, data_dir=data_dir, user=USER, password=PASSWORD
    )
    try:
        yield started
    finally:
        kafka_local.down(port, data_dir)
        assert not kafka_local.status(port, data_dir).running


def _port(broker: BrokerStatus) -> int:
    return int(broker.bootstrap.rsplit(":", 1)[1])


def test_the_broker_reports_itself_running_in_sasl_mode(broker: BrokerStatus) -> None:
    current = kafka_local.status(_port(broker), broker.data_dir)
    assert current.running and current.sasl
    assert current.pid == broker.pid


def test_calling_up_again_reuses_the_running_broker(broker: BrokerStatus) -> None:
    again = kafka_local.up(
        _port(broker), sasl=True, data_dir=broker.data_dir, user=USER, password=PASSWORD
    )
    assert again.pid == broker.pid


def test_the_right_credentials_can_create_a_topic_produce_and_consume(
    broker: BrokerStatus,
) -> None:
    topic = "stockroute-sasl-check"
    auth = {**SASL, "sasl_plain_username": USER, "sasl_plain_password": PASSWORD}

    async def roundtrip() -> bytes:
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap, **auth)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
            assert topic in await admin.list_topics()
        finally:
            await admin.close()

        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, **auth)
        await producer.start()
        try:
            await producer.send_and_wait(topic, b"order-1 reserved", key=b"order-1")
        finally:
            await producer.stop()

        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=broker.bootstrap,
            group_id="sasl-check",
            auto_offset_reset="earliest",
            **auth,
        )
        await consumer.start()
        try:
            record = await asyncio.wait_for(consumer.getone(), timeout=30)
        finally:
            await consumer.stop()
        assert record.key == b"order-1"
        return bytes(record.value or b"")

    assert asyncio.run(roundtrip()) == b"order-1 reserved"


def test_a_wrong_password_is_refused_with_a_sasl_authentication_error(
    broker: BrokerStatus,
) -> None:
    async def connect() -> None:
        conn = await create_conn(
            "127.0.0.1",
            _port(broker),
            sasl_plain_username=USER,
            sasl_plain_password="not-the-password",
            **SASL,
        )
        conn.close()

    with pytest.raises(SaslAuthenticationFailed, match="Invalid username or password"):
        asyncio.run(connect())


def test_a_producer_with_an_unknown_user_cannot_bootstrap_and_logs_why(
    broker: BrokerStatus, caplog: pytest.LogCaptureFixture
) -> None:
    async def start_producer() -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=broker.bootstrap,
            sasl_plain_username="intruder",
            sasl_plain_password=PASSWORD,
            **SASL,
        )
        try:
            await producer.start()
        finally:
            await producer.stop()

    # aiokafka wraps the refusal in a connection error and logs the real cause.
    with (
        caplog.at_level(logging.ERROR, logger="aiokafka"),
        pytest.raises(KafkaConnectionError, match="Unable to bootstrap"),
    ):
        asyncio.run(start_producer())
    assert any("SaslAuthenticationFailed" in r.getMessage() for r in caplog.records)
