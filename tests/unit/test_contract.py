"""The typed registry: topics.yaml bound to the models, schemas/ generated from them, and
sends refused when a value is not of its topic's type."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from streams.codecs import Rejected
from streams.records import MODELS, AcceptanceTimeout, ReservationResult, StockAvailability
from streams.topics import TOPICS, TOPICS_FILE, load_topics, schemas

ROOT = Path(__file__).resolve().parents[2]


def test_every_topic_public_and_internal_is_bound_to_a_model() -> None:
    assert {t.visibility for t in TOPICS} == {"input", "output", "internal"}
    for t in TOPICS:
        assert t.model is MODELS[t.model_name], t.handle
        assert t.schema.startswith("schemas/") and t.schema.endswith(".json"), t.handle


def test_schemas_are_generated_from_the_models_and_up_to_date() -> None:
    """`stockroute schemas` regenerates them; this fails when someone changed a model only."""
    want = schemas()
    assert sorted(want) == sorted(f"schemas/{p.name}" for p in (ROOT / "schemas").glob("*.json"))
    for rel, text in want.items():
        assert (ROOT / rel).read_text() == text, f"{rel} is stale: run `stockroute schemas`"


def test_topics_yaml_names_only_files_that_exist() -> None:
    """Its comments and table descriptions point at code; a renamed module makes it stale."""
    text = TOPICS_FILE.read_text()
    for path in set(re.findall(r"[a-z_/]+\.py", text)):
        assert (ROOT / path).exists(), f"topics.yaml names {path}, which does not exist"


def test_a_handle_bound_to_another_type_than_the_code_declares_does_not_load(
    tmp_path: Path,
) -> None:
    bad = tmp_path / "topics.yaml"
    bad.write_text(TOPICS_FILE.read_text().replace("model: Refund", "model: OrderEvent"))
    with pytest.raises(ValueError, match="refunds is bound to OrderEvent"):
        load_topics(bad)


def test_a_send_refuses_a_value_of_another_type() -> None:
    timeout = AcceptanceTimeout(order_id="O1", shipment_id="O1-S1")
    assert TOPICS.order_commands.encode(timeout).startswith(b'{"type":"acceptance_timeout"')
    with pytest.raises(TypeError, match="stock_availability carries StockAvailability"):
        TOPICS.stock_availability.encode(timeout)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        TOPICS.routed_orders.encode({"order_id": "O1"})  # type: ignore[arg-type]


def test_a_receive_decodes_to_the_model_or_rejects_with_the_reason() -> None:
    answer = ReservationResult(
        order_id="O1", reservation_id="O1-S1/A", sku="A", location_id="ST-1", qty=1, ok=True
    )
    assert TOPICS.order_commands.decode(TOPICS.order_commands.encode(answer)) == answer
    avail = StockAvailability(
        sku="A",
        location_id="ST-1",
        on_hand=1,
        reserved=0,
        available=1,
        updated_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    assert TOPICS.stock_availability.decode(TOPICS.stock_availability.encode(avail)) == avail
    with pytest.raises(Rejected, match="invalid LocationOpsMessage: message: Input tag 'explode'"):
        TOPICS.location_ops.decode(b'{"kind":"explode"}')
    with pytest.raises(Rejected, match="empty message"):
        TOPICS.location_ops.decode(None)
