"""The delivery-promise API on the worker's web server (Faust web views, loopback by default).

- ``POST /promise``: a basket (``lines`` of sku/qty), the customer's position (``lat`` and
  ``lon``, or a French ``postcode`` geocoded offline to its département's centroid by
  domain/postcode.py; lat/lon win when both are given) and the wanted ``modes``; answers every
  feasible option, decided by the same routing function on this worker's in-memory views as an
  order placed now (domain/quote.py), reserving nothing. ``now`` is the network clock.
- ``GET /availability/{sku}``: the SKU's available units network-wide and per location.
- ``GET /openapi.yaml`` and ``GET /openapi.json``: the API's description, docs/promise-api.yaml
  (the one source; the JSON is the same document converted).

A bad request gets 400 and the precise reason (which field, what is wrong); an unknown SKU is
not an error (nothing is available).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import orjson
import yaml
from faust.web import Request, Response, View
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from domain.postcode import geocode
from domain.quote import Basket, availability, quote
from streams.app import Runtime
from streams.records import MAX_LINES, Id, Latitude, Longitude, Qty

MAX_PICKUP_STORES = 10
OPENAPI_FILE = Path(__file__).parent.parent / "docs" / "promise-api.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


Mode = Literal["home_standard", "home_express", "click_collect"]  # domain.quote.MODES


class BasketLine(_Strict):
    sku: Id
    qty: Qty


class Customer(_Strict):
    """Where the customer is: lat and lon, or a postcode alone (geocoded by `position`)."""

    lat: Latitude | None = None
    lon: Longitude | None = None
    postcode: Annotated[str, Field(max_length=32)] | None = None

    @model_validator(mode="after")
    def _a_position(self) -> Customer:
        if (self.lat is None) != (self.lon is None):
            raise PydanticCustomError(
                "position", "lat and lon go together: give both, or neither and a postcode"
            )
        if self.lat is None and self.postcode is None:
            raise PydanticCustomError(
                "position", "a position is required: lat and lon, or a postcode"
            )
        return self


class PromiseRequest(_Strict):
    lines: Annotated[list[BasketLine], Field(min_length=1, max_length=MAX_LINES)]
    customer: Customer
    modes: Annotated[list[Mode], Field(min_length=1)] = [
        "home_standard",
        "home_express",
        "click_collect",
    ]
    pickup_stores: Annotated[int, Field(ge=1, le=MAX_PICKUP_STORES)] = 3


@dataclass(frozen=True, slots=True)
class Position:
    """The point the options are decided from, and where it came from (the answer says it)."""

    lat: float
    lon: float
    source: Literal["lat_lon", "postcode"]
    departement: str | None = None
    precision_km: int | None = None
    """postcode: the farthest the customer can be from the point (the département's extent)."""


def position(customer: Customer) -> Position:
    """The customer's point: lat/lon when given (a postcode beside them is only echoed, not
    checked: it may be any country's), else the postcode's département centroid, or ValueError
    with the reason (the 400's)."""
    if customer.lat is not None and customer.lon is not None:
        return Position(customer.lat, customer.lon, "lat_lon")
    assert customer.postcode is not None  # Customer's validator: lat/lon or a postcode
    try:
        place = geocode(customer.postcode)
    except ValueError as exc:
        raise ValueError(f"customer.postcode: {exc}") from None
    return Position(place.lat, place.lon, "postcode", place.departement, place.radius_km)


def reason(exc: ValidationError) -> str:
    """Every validation error as 'field.path: message', joined (the 400's reason)."""
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "body"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


def parse(body: bytes) -> tuple[PromiseRequest, Position]:
    """The request and the customer's point, or ValueError with the precise reason."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError("body must be a JSON object with lines, customer and modes")
    try:
        req = PromiseRequest.model_validate(data)
    except ValidationError as exc:
        raise ValueError(reason(exc)) from None
    return req, position(req.customer)


def answer(rt: Runtime, req: PromiseRequest, at: Position) -> dict[str, Any]:
    """The options for a valid request from the point `at`, on this worker's views at its
    network time."""
    now = rt.clock.at()
    basket = Basket(
        lines=tuple((ln.sku, ln.qty) for ln in req.lines),
        lat=at.lat,
        lon=at.lon,
        modes=tuple(dict.fromkeys(req.modes)),
        pickup_stores=req.pickup_stores,
    )
    out = quote(basket, rt.availability, rt.locations.by_id, rt.loads.by_id, rt.policy, now=now)
    where = {k: v for k, v in asdict(at).items() if v is not None}
    return {"now": now.isoformat(), "postcode": req.customer.postcode, "position": where, **out}


def openapi() -> tuple[bytes, bytes]:
    """docs/promise-api.yaml as served: its text, and the same document as JSON."""
    text = OPENAPI_FILE.read_bytes()
    return text, orjson.dumps(yaml.safe_load(text))


def install(rt: Runtime) -> None:
    """Serve the views on the worker's web server (the OpenAPI file is read once, here)."""
    app = rt.app
    spec_yaml, spec_json = openapi()

    @app.page("/promise")
    class PromiseView(View):
        async def post(self, request: Request, **kwargs: Any) -> Response:
            if not rt.views_ready:
                return self.json({"error": "views not caught up yet"}, status=503)
            try:
                req, at = parse(await request.read())  # type: ignore[attr-defined]
            except ValueError as exc:
                return self.json({"error": str(exc)}, status=400)
            # orjson: the answer is the largest part of the request's cost after routing
            return self.bytes(orjson.dumps(answer(rt, req, at)), content_type="application/json")

    @app.page("/availability/{sku}")
    class AvailabilityView(View):
        async def get(self, request: Request, sku: str = "", **kwargs: Any) -> Response:
            if not sku or len(sku) > 128:
                return self.json({"error": "sku must be 1 to 128 characters"}, status=400)
            body = orjson.dumps(availability(sku, rt.availability, rt.locations.by_id))
            return self.bytes(body, content_type="application/json")

    @app.page("/openapi.yaml")
    class OpenApiYamlView(View):
        async def get(self, request: Request, **kwargs: Any) -> Response:
            return self.bytes(spec_yaml, content_type="application/yaml")

    @app.page("/openapi.json")
    class OpenApiJsonView(View):
        async def get(self, request: Request, **kwargs: Any) -> Response:
            return self.bytes(spec_json, content_type="application/json")
