"""Bundles (streams/bundles.py): a batch's messages to one partition of an internal topic as
one record, and how a state's recorded position compares with a bundle's messages."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from domain.routing import RoutingPolicy
from streams import bundles
from streams.app import Runtime, partition_of
from streams.codecs import Rejected, dead_letter
from streams.records import ShipmentReservation
from streams.settings import WorkerSettings
from streams.topics import TOPICS


def answer(order_id: str, ok: bool = True) -> ShipmentReservation:
    return ShipmentReservation(
        order_id=order_id, shipment_id=f"{order_id}-S1", location_id="ST-1", ok=ok, skus=["A"]
    )


def test_a_bundle_gives_back_each_key_and_message_as_sent() -> None:
    sent = [(b"O1", b'{"a":1}'), (b"\xc3\xa9-2", b'{"b":[1,"x"]}')]
    raw = bundles.join(sent)
    assert bundles.is_bundle(raw) and not bundles.is_bundle(b'{"a":1}')
    assert not bundles.is_bundle(None)
    assert bundles.split(raw) == sent
    assert orjson.loads(raw) == [["O1", {"a": 1}], ["é-2", {"b": [1, "x"]}]]


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"[[1,", "malformed JSON bundle"),
        (b'[["O1",{}],["O2"]]', "bundle item 1 is not a [key, message] pair"),
        (b'[[7,{"a":1}]]', "bundle item 0 is not a [key, message] pair"),
    ],
)
def test_a_malformed_bundle_is_refused_with_the_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(Rejected) as err:
        bundles.split(raw)
    assert err.value.reason.startswith(reason)


def test_a_recorded_position_covers_the_inputs_at_or_before_it() -> None:
    # an int: a single record's offset, as every state recorded before bundles
    assert bundles.applied(7, 7, 0) and bundles.applied(7, 6, 3)
    assert not bundles.applied(7, 7, 1) and not bundles.applied(7, 8, 0)
    # a bundle's message: the record's offset and its index
    assert bundles.position(9, 0) == 9 and bundles.position(9, 2) == [9, 2]
    assert bundles.applied([9, 2], 9, 2) and bundles.applied([9, 2], 9, 1)
    assert not bundles.applied([9, 2], 9, 3) and not bundles.applied([9, 2], 10, 0)
    assert not bundles.applied(None, 0, 0)


def _runtime(monkeypatch: pytest.MonkeyPatch) -> tuple[Runtime, list[tuple[Any, ...]]]:
    produced: list[tuple[Any, ...]] = []

    async def produce(topic: str, key: Any, value: Any, partition: Any = None) -> Any:
        produced.append((topic, key, value, partition))
        return None

    rt = Runtime(app=SimpleNamespace(), settings=WorkerSettings(), policy=RoutingPolicy.default())
    monkeypatch.setattr(rt, "produce", produce)
    return rt, produced


def test_a_batch_sends_one_record_per_partition_of_a_bundled_topic(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Inside a batch the answers to one partition go as one record, in the order sent; a
    partition with one answer gets a plain record; a public topic is never bundled; outside a
    batch (a timer) every message goes at once."""
    rt, produced = _runtime(monkeypatch)
    part = {oid: bundles_partition(oid) for oid in ("O1", "O2", "O3", "O4", "O5", "O6")}
    same = [o for o in part if part[o] == part["O1"]]
    other = next(o for o in part if part[o] != part["O1"])
    assert len(same) >= 2, part  # murmur2 of these keys over 4 partitions

    async def batch() -> None:
        rt.begin_batch()
        for oid in same:
            await rt.send(TOPICS.order_commands, oid, answer(oid))
        await rt.send(TOPICS.order_commands, other, answer(other, ok=False))
        await rt.send(TOPICS.dead_letters, "x", _dead_letter())
        assert [p[0] for p in produced] == [TOPICS.dead_letters.name]  # the rest waits
        await rt.end_batch()
        await rt.send(TOPICS.order_commands, "O1", answer("O1"))  # no batch: at once

    asyncio.run(batch())
    oc = TOPICS.order_commands.name
    records = [p for p in produced if p[0] == oc]
    assert len(records) == 3
    bundle, single, late = records
    assert bundle[1] is None and bundle[3] == part["O1"]
    assert [(k, m["order_id"]) for k, m in orjson.loads(bundle[2])] == [(o, o) for o in same]
    assert single[1] == other.encode() and orjson.loads(single[2])["ok"] is False
    assert single[3] == part[other]
    assert late[1] == b"O1" and not bundles.is_bundle(late[2])
    # per record produced inside a batch: how many messages it carried
    count = rt.metrics.registry.get_sample_value("stockroute_bundle_messages_count", {"topic": oc})
    total = rt.metrics.registry.get_sample_value("stockroute_bundle_messages_sum", {"topic": oc})
    assert (count, total) == (2, len(same) + 1)


def test_a_bundle_is_produced_once_it_reaches_its_size(monkeypatch: pytest.MonkeyPatch) -> None:
    rt, produced = _runtime(monkeypatch)
    monkeypatch.setattr(bundles, "MAX_BYTES", 300)

    async def batch() -> None:
        rt.begin_batch()
        for _ in range(5):
            await rt.send(TOPICS.order_commands, "O1", answer("O1"))
        await rt.end_batch()

    asyncio.run(batch())
    sizes = [len(bundles.split(p[2])) if bundles.is_bundle(p[2]) else 1 for p in produced]
    assert sum(sizes) == 5 and len(sizes) > 1
    assert all(len(p[2]) < 300 + 200 for p in produced)


def bundles_partition(key: str) -> int:
    return partition_of(key.encode(), TOPICS.order_commands.partitions)


def _dead_letter() -> Any:
    return dead_letter(topic="t", partition=0, offset=0, key=b"x", raw=b"{", error="bad")
