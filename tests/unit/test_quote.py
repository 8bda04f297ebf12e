"""The delivery-promise API's rule (domain/quote.py) and its request parsing
(streams/promise_api.py): options decided like an order, 400 reasons, unknown SKUs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from domain.quote import Basket, availability, quote
from domain.routing import RoutingPolicy, RoutingRequest, decide
from streams.promise_api import parse
from streams.records import Location

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)  # Tuesday 10:00 in Paris


def loc(location_id: str, kind: str, km: float) -> Location:
    return Location(
        location_id=location_id,
        kind=kind,  # type: ignore[arg-type]
        name=location_id,
        lat=48.85 + km / 111.2,
        lon=2.35,
        ship_from_store=True,
        click_collect=kind == "store",
        capacity_per_hour=20,
        max_backlog=50,
    )


LOCS = {
    x.location_id: x
    for x in (loc("ST-1", "store", 1), loc("ST-2", "store", 3), loc("WH-1", "warehouse", 200))
}


class Stock:
    def __init__(self, by_sku: dict[str, dict[str, int]]) -> None:
        self.by_sku = by_sku

    def stock_of(self, sku: str) -> dict[str, int]:
        return self.by_sku.get(sku, {})


STOCK = Stock({"A": {"ST-1": 2, "WH-1": 10}, "B": {"WH-1": 4}, "C": {"ST-2": 1}})


def _quote(lines: tuple[tuple[str, int], ...], **kw: Any) -> dict[str, Any]:
    basket = Basket(lines=lines, lat=48.85, lon=2.35, **kw)
    return quote(basket, STOCK, LOCS, {}, RoutingPolicy.default(), NOW)


def test_every_option_is_the_decision_an_order_would_get() -> None:
    out = _quote((("A", 1),))
    names = [(o["option"], o.get("pickup_location_id")) for o in out["options"]]
    assert names == [
        ("home_standard", None),
        ("home_express", None),
        ("click_collect", "ST-1"),
        ("click_collect", "ST-2"),
    ]
    home = out["options"][0]
    req = RoutingRequest("O", 48.85, 2.35, "home", None, "standard", (("A", 1),))
    d = decide(req, STOCK, LOCS, {}, RoutingPolicy.default(), now=NOW)
    assert [s["location_id"] for s in home["shipments"]] == [d.shipments[0].location_id]
    promised = d.shipments[0].promise
    assert promised is not None
    assert home["shipments"][0]["ship_by"] == promised.ship_by.isoformat()
    assert home["promised_date"] == "2026-12-02" and home["split"] is False
    assert home["cost"] > 0
    shelf = out["options"][2]
    assert shelf["shipments"][0]["mode"] == "click_collect"
    assert "ready_for_pickup_by" in shelf["shipments"][0]
    transfer = out["options"][3]
    assert transfer["shipments"][0]["mode"] == "transfer_to_store"


def test_a_basket_needing_two_locations_says_it_would_split() -> None:
    out = _quote((("A", 3), ("B", 5)), modes=("home_standard",))
    assert out["options"] == []
    assert out["unavailable"][0]["reason"] == "insufficient_stock"
    out = _quote((("B", 1), ("C", 1)), modes=("home_standard",))
    [split] = out["options"]
    assert split["split"] is True
    assert sorted(s["location_id"] for s in split["shipments"]) == ["ST-2", "WH-1"]
    # the latest of the two shipments' dates: the warehouse 200 km away takes 2 days
    assert split["promised_date"] == "2026-12-03"


def test_unknown_skus_are_not_errors() -> None:
    out = _quote((("NOPE", 1),), modes=("home_standard",))
    assert out["options"] == []
    assert out["unavailable"] == [
        {
            "option": "home_standard",
            "service": "standard",
            "reason": "insufficient_stock",
            "detail": {"short": {"NOPE": 1}},
        }
    ]
    assert availability("NOPE", STOCK, LOCS) == {"sku": "NOPE", "available": 0, "locations": []}


def test_availability_is_network_wide_and_per_location() -> None:
    a = availability("A", STOCK, LOCS)
    assert a["available"] == 12
    assert [(r["location_id"], r["available"]) for r in a["locations"]] == [
        ("WH-1", 10),
        ("ST-1", 2),
    ]


GOOD = {"lines": [{"sku": "A", "qty": 1}], "customer": {"lat": 48.85, "lon": 2.35}}


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{", "body is not JSON"),
        (b"[]", "body must be a JSON object"),
        ({"customer": GOOD["customer"]}, "lines: Field required"),
        ({**GOOD, "lines": []}, "lines: List should have at least 1 item"),
        (
            {**GOOD, "lines": [{"sku": "A", "qty": 0}]},
            "lines.0.qty: Input should be greater than 0",
        ),
        (
            {**GOOD, "lines": [{"sku": "A", "qty": "2"}]},
            "lines.0.qty: Input should be a valid integer",
        ),
        (
            {**GOOD, "customer": {"lat": 95, "lon": 2}},
            "customer.lat: Input should be less than or equal to 90",
        ),
        (
            {**GOOD, "customer": {"postcode": "96000"}},
            "customer.postcode: postcode 96000: no département 96",
        ),
        (
            {**GOOD, "customer": {"postcode": "7500"}},
            "customer.postcode: '7500' is not a French postcode (five digits)",
        ),
        ({**GOOD, "customer": {}}, "customer: a position is required: lat and lon, or a postcode"),
        (
            {**GOOD, "customer": {"lat": 48.85, "postcode": "75001"}},
            "customer: lat and lon go together",
        ),
        ({**GOOD, "modes": ["drone"]}, "modes.0: Input should be 'home_standard'"),
        ({**GOOD, "pickup_stores": 50}, "pickup_stores: Input should be less than or equal to 10"),
        ({**GOOD, "colour": "red"}, "colour: Extra inputs are not permitted"),
    ],
)
def test_a_bad_request_has_a_precise_reason(body: Any, reason: str) -> None:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    with pytest.raises(ValueError) as err:
        parse(raw)
    assert reason in str(err.value)


def test_a_good_request_parses_with_default_modes() -> None:
    req, _ = parse(orjson.dumps(GOOD))
    assert req.modes == ["home_standard", "home_express", "click_collect"]
    assert req.pickup_stores == 3
