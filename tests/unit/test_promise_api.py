"""The delivery-promise API's handler (streams/promise_api.py): where the customer is placed
(lat/lon, or a postcode geocoded), the answer it gives, and its OpenAPI description
(docs/promise-api.yaml) against the request model, so the two cannot drift apart."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
import yaml

from domain.postcode import geocode
from domain.routing import RoutingPolicy
from streams.promise_api import OPENAPI_FILE, Position, PromiseRequest, answer, openapi, parse
from streams.records import Location

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)  # Tuesday 10:00 in Paris
PARIS = geocode("75001")
LYON = geocode("69003")


def store(location_id: str, lat: float, lon: float) -> Location:
    return Location(
        location_id=location_id,
        kind="store",
        name=location_id,
        lat=lat,
        lon=lon,
        ship_from_store=True,
        click_collect=True,
        capacity_per_hour=20,
        max_backlog=50,
    )


class Stock:
    def __init__(self, by_sku: dict[str, dict[str, int]]) -> None:
        self.by_sku = by_sku

    def stock_of(self, sku: str) -> dict[str, int]:
        return self.by_sku.get(sku, {})


def runtime() -> Any:
    """What `answer` reads of a Runtime: the clock, the views and the policy."""
    locs = {
        x.location_id: x
        for x in (store("ST-PAR", PARIS.lat, PARIS.lon), store("ST-LYS", LYON.lat, LYON.lon))
    }
    return SimpleNamespace(
        clock=SimpleNamespace(at=lambda: NOW),
        availability=Stock({"A": {"ST-PAR": 3, "ST-LYS": 3}}),
        locations=SimpleNamespace(by_id=locs),
        loads=SimpleNamespace(by_id={}),
        policy=RoutingPolicy.default(),
    )


def ask(customer: dict[str, Any], **extra: Any) -> dict[str, Any]:
    body = {"lines": [{"sku": "A", "qty": 1}], "customer": customer, **extra}
    req, at = parse(orjson.dumps(body))
    return answer(runtime(), req, at)


def test_a_postcode_alone_is_answered_from_its_departements_centroid() -> None:
    by_postcode = ask({"postcode": "69003"})
    by_point = ask({"lat": LYON.lat, "lon": LYON.lon})
    assert by_postcode["position"] == {
        "lat": LYON.lat,
        "lon": LYON.lon,
        "source": "postcode",
        "departement": "69",
        "precision_km": LYON.radius_km,
    }
    assert by_postcode["postcode"] == "69003"
    # the same options as the equivalent lat/lon: the Lyon store, not the Paris one
    assert by_postcode["options"] == by_point["options"]
    home = by_postcode["options"][0]
    assert home["option"] == "home_standard"
    assert [s["location_id"] for s in home["shipments"]] == ["ST-LYS"]
    pickups = [o["pickup_location_id"] for o in by_postcode["options"][2:]]
    assert pickups == ["ST-LYS", "ST-PAR"]


def test_lat_lon_win_over_a_postcode_given_with_them() -> None:
    # a Paris position with a Lyon postcode is answered from Paris
    got = ask({"lat": PARIS.lat, "lon": PARIS.lon, "postcode": "69003"})
    assert got["position"] == {"lat": PARIS.lat, "lon": PARIS.lon, "source": "lat_lon"}
    assert got["postcode"] == "69003"
    assert [s["location_id"] for s in got["options"][0]["shipments"]] == ["ST-PAR"]
    # beside lat/lon the postcode is echoed, not checked (it may be any country's)
    _, at = parse(
        orjson.dumps(
            {"lines": [{"sku": "A", "qty": 1}], "customer": {"lat": 1, "lon": 2, "postcode": "X"}}
        )
    )
    assert at == Position(1.0, 2.0, "lat_lon")


def test_corsica_and_overseas_postcodes_are_placed() -> None:
    assert ask({"postcode": "20200"})["position"]["departement"] == "2B"
    assert ask({"postcode": "97400"})["position"]["departement"] == "974"


@pytest.mark.parametrize(
    ("customer", "reason"),
    [
        ({"postcode": "96000"}, "customer.postcode: postcode 96000: no département 96"),
        ({"postcode": "75-001"}, "customer.postcode: '75-001' is not a French postcode"),
        ({"postcode": 75001}, "customer.postcode: Input should be a valid string"),
        ({"lon": 2.35, "postcode": "75001"}, "customer: lat and lon go together"),
        ({}, "customer: a position is required: lat and lon, or a postcode"),
    ],
)
def test_a_request_without_a_usable_position_is_refused_with_the_reason(
    customer: dict[str, Any], reason: str
) -> None:
    body = {"lines": [{"sku": "A", "qty": 1}], "customer": customer}
    with pytest.raises(ValueError) as err:
        parse(orjson.dumps(body))
    assert reason in str(err.value)


# ---- the OpenAPI description --------------------------------------------------------------------


def served() -> dict[str, Any]:
    text, as_json = openapi()
    doc = yaml.safe_load(text)
    assert orjson.loads(as_json) == doc  # one source: the JSON is the YAML converted
    assert isinstance(doc, dict)
    return doc


def test_the_served_description_parses_and_lists_the_api() -> None:
    doc = served()
    assert doc["openapi"].startswith("3.")
    assert openapi()[0] == OPENAPI_FILE.read_bytes()  # served as written
    assert {"/promise", "/availability/{sku}"} <= set(doc["paths"])
    assert "post" in doc["paths"]["/promise"] and "get" in doc["paths"]["/availability/{sku}"]
    assert {"200", "400", "503"} <= set(doc["paths"]["/promise"]["post"]["responses"])


_KEYS = (
    "type",
    "enum",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "additionalProperties",
)


def _norm(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """A schema reduced to what a client relies on: types, bounds, fields, required ones,
    defaults. Pydantic's spellings are mapped to the document's: $ref resolved, an optional
    field's `anyOf [X, null]` is X, an integer's exclusiveMinimum n is minimum n + 1."""
    if "$ref" in schema:
        schema = defs[schema["$ref"].split("/")[-1]]
    if "anyOf" in schema and {"type": "null"} in schema["anyOf"]:
        [schema] = [s for s in schema["anyOf"] if s != {"type": "null"}] or [{}]
        schema = {**schema}
    out = {k: schema[k] for k in _KEYS if k in schema}
    if "exclusiveMinimum" in schema and schema.get("type") == "integer":
        out["minimum"] = schema["exclusiveMinimum"] + 1
    if schema.get("default") is not None:
        out["default"] = schema["default"]
    if "properties" in schema:
        out["properties"] = {k: _norm(v, defs) for k, v in schema["properties"].items()}
        out["required"] = sorted(schema.get("required", []))
    if "items" in schema:
        out["items"] = _norm(schema["items"], defs)
    return out


def test_the_documented_request_schema_is_the_request_model() -> None:
    doc = served()
    documented = doc["components"]["schemas"]["PromiseRequest"]
    model = PromiseRequest.model_json_schema()
    assert _norm(documented, {}) == _norm(model, model["$defs"])


def test_the_documented_position_alternatives_are_what_the_model_accepts() -> None:
    customer = served()["components"]["schemas"]["PromiseRequest"]["properties"]["customer"]
    sample = {"lat": 45.76, "lon": 4.84, "postcode": "69003"}
    alternatives = [alt["required"] for alt in customer["anyOf"]]
    assert alternatives == [["lat", "lon"], ["postcode"]]
    for fields in alternatives:
        customer_only = {f: sample[f] for f in fields}
        parse(orjson.dumps({"lines": [{"sku": "A", "qty": 1}], "customer": customer_only}))
    with pytest.raises(ValueError):
        parse(orjson.dumps({"lines": [{"sku": "A", "qty": 1}], "customer": {}}))


def test_the_documented_examples_are_valid_requests_and_errors() -> None:
    post = served()["paths"]["/promise"]["post"]
    examples = post["requestBody"]["content"]["application/json"]["examples"]
    assert {"position", "postcode"} <= set(examples)
    for example in examples.values():
        parse(orjson.dumps(example["value"]))
    # the documented 400s are the messages a request gets
    errors = post["responses"]["400"]["content"]["application/json"]["examples"]
    bodies = {
        "no_position": {"lines": [{"sku": "A", "qty": 1}], "customer": {}},
        "malformed_postcode": {"lines": [{"sku": "A", "qty": 1}], "customer": {"postcode": "7500"}},
        "unknown_postcode": {"lines": [{"sku": "A", "qty": 1}], "customer": {"postcode": "96000"}},
        "field": {"lines": [{"sku": "A", "qty": 0}], "customer": {"postcode": "75001"}},
    }
    assert set(errors) == set(bodies)
    for name, body in bodies.items():
        with pytest.raises(ValueError) as err:
            parse(orjson.dumps(body))
        assert str(err.value) == errors[name]["value"]["error"], name
