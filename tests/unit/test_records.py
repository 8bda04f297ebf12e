"""Validation of the wire contract (streams/records.py) and the dead-letter envelope."""

from __future__ import annotations

import base64
import json

import pytest

from streams.codecs import Rejected, dead_letter
from streams.topics import TOPICS

NOW = "2026-11-25T10:00:00+00:00"


def sale(**kw: object) -> bytes:
    base = {
        "event_id": "e1",
        "occurred_at": NOW,
        "location_id": "ST-1",
        "lines": [{"sku": "A", "qty": 1}],
    }
    base.update(kw)
    return json.dumps(base).encode()


def test_a_valid_sale_decodes() -> None:
    assert TOPICS.pos_sales.decode(sale()).lines[0].qty == 1


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{oops", "malformed JSON"),
        (b"42", "not a JSON object"),
        (sale(lines=[{"sku": "A", "qty": 0}]), "lines.0.qty"),
        (sale(lines=[{"sku": "A", "qty": "2"}]), "valid integer"),
        (sale(lines=[{"sku": "A", "qty": 1.5}]), "valid integer"),
        (sale(lines=[]), "lines"),
        (sale(occurred_at="yesterday"), "occurred_at"),
        (sale(occurred_at="2026-11-25T10:00:00"), "timezone"),
        (sale(lines=[{"sku": "A", "qty": 10**12}]), "less than or equal"),
    ],
)
def test_bad_sales_are_rejected_with_a_precise_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(Rejected) as exc:
        TOPICS.pos_sales.decode(raw)
    assert reason in exc.value.reason


def test_a_stock_count_of_zero_is_allowed_but_a_receipt_of_zero_is_not() -> None:
    count = {
        "event_id": "e",
        "occurred_at": NOW,
        "type": "stock_count",
        "location_id": "S",
        "lines": [{"sku": "A", "qty": 0}],
    }
    assert TOPICS.supplier_feeds.decode(json.dumps(count).encode()).lines[0].qty == 0
    with pytest.raises(Rejected, match="receipt quantity"):
        TOPICS.supplier_feeds.decode(json.dumps({**count, "type": "receipt"}).encode())


def test_a_placed_order_must_be_complete_but_a_cancellation_need_not() -> None:
    cancel = {"event_id": "e", "occurred_at": NOW, "type": "order_cancelled", "order_id": "O1"}
    assert TOPICS.web_orders.decode(json.dumps(cancel).encode()).order_id == "O1"
    with pytest.raises(Rejected, match="order_placed lacks"):
        TOPICS.web_orders.decode(json.dumps({**cancel, "type": "order_placed"}).encode())


def test_click_and_collect_needs_a_pickup_store() -> None:
    order = {
        "event_id": "e",
        "occurred_at": NOW,
        "type": "order_placed",
        "order_id": "O1",
        "customer": {"lat": 48.0, "lon": 2.0},
        "delivery": {"mode": "click_collect", "service": "standard"},
        "lines": [{"sku": "A", "qty": 1, "unit_price": 9.5}],
        "currency": "EUR",
        "payment": {"method": "card", "reference": "p1"},
    }
    with pytest.raises(Rejected, match="pickup_location_id"):
        TOPICS.web_orders.decode(json.dumps(order).encode())


def test_unknown_extra_fields_are_tolerated_for_compatible_extension() -> None:
    assert TOPICS.pos_sales.decode(sale(till="7")).event_id == "e1"


def test_a_dead_letter_keeps_non_utf8_bytes_as_base64() -> None:
    raw = b"\xff\x00bytes"
    dl = dead_letter(topic="pos-sales", partition=1, offset=5, key=b"ST-1", raw=raw, error="x")
    assert dl.raw_encoding == "base64" and base64.b64decode(dl.raw) == raw
    text = dead_letter(topic="t", partition=0, offset=0, key=None, raw=b"{}", error="x")
    assert text.raw == "{}" and text.raw_encoding == "utf-8" and text.key is None
