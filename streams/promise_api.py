"""The delivery-promise API on the worker's web server (Faust web views, loopback by default).

- ``POST /promise``: a basket (``lines`` of sku/qty), the customer's position (``lat``, ``lon``;
  a ``postcode`` is echoed, not geocoded) and the wanted ``modes``; answers every feasible
  option, decided by the same routing function on this worker's in-memory views as an order
  placed now (domain/quote.py), reserving nothing. ``now`` is the network clock.
- ``GET /availability/{sku}``: the SKU's available units network-wide and per location.

A bad request gets 400 and the precise reason (which field, what is wrong); an unknown SKU is
not an error (nothing is available). The OpenAPI description is docs/promise-api.yaml.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from faust.web import Request, Response, View
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from domain.quote import Basket, availability, quote
from streams.app import Runtime
from streams.records import MAX_LINES, Id, Latitude, Longitude, Qty

MAX_PICKUP_STORES = 10


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


Mode = Literal["home_standard", "home_express", "click_collect"]  # domain.quote.MODES


class BasketLine(_Strict):
    sku: Id
    qty: Qty


class Customer(_Strict):
    lat: Latitude
    lon: Longitude
    postcode: Annotated[str, Field(max_length=32)] | None = None


class PromiseRequest(_Strict):
    lines: Annotated[list[BasketLine], Field(min_length=1, max_length=MAX_LINES)]
    customer: Customer
    modes: Annotated[list[Mode], Field(min_length=1)] = [
        "home_standard",
        "home_express",
        "click_collect",
    ]
    pickup_stores: Annotated[int, Field(ge=1, le=MAX_PICKUP_STORES)] = 3


def reason(exc: ValidationError) -> str:
    """Every validation error as 'field.path: message', joined (the 400's reason)."""
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "body"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


def parse(body: bytes) -> PromiseRequest:
    """The request, or ValueError with the precise reason."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError("body must be a JSON object with lines, customer and modes")
    try:
        return PromiseRequest.model_validate(data)
    except ValidationError as exc:
        raise ValueError(reason(exc)) from None


def answer(rt: Runtime, req: PromiseRequest) -> dict[str, Any]:
    """The options for a valid request, on this worker's views at its network time."""
    now = rt.clock.at()
    basket = Basket(
        lines=tuple((ln.sku, ln.qty) for ln in req.lines),
        lat=req.customer.lat,
        lon=req.customer.lon,
        modes=tuple(dict.fromkeys(req.modes)),
        pickup_stores=req.pickup_stores,
    )
    out = quote(basket, rt.availability, rt.locations.by_id, rt.loads.by_id, rt.policy, now=now)
    return {"now": now.isoformat(), "postcode": req.customer.postcode, **out}


def install(rt: Runtime) -> None:
    """Serve the two views on the worker's web server."""
    app = rt.app

    @app.page("/promise")
    class PromiseView(View):
        async def post(self, request: Request, **kwargs: Any) -> Response:
            if not rt.views_ready:
                return self.json({"error": "views not caught up yet"}, status=503)
            try:
                req = parse(await request.read())  # type: ignore[attr-defined]
            except ValueError as exc:
                return self.json({"error": str(exc)}, status=400)
            # orjson: the answer is the largest part of the request's cost after routing
            return self.bytes(orjson.dumps(answer(rt, req)), content_type="application/json")

    @app.page("/availability/{sku}")
    class AvailabilityView(View):
        async def get(self, request: Request, sku: str = "", **kwargs: Any) -> Response:
            if not sku or len(sku) > 128:
                return self.json({"error": "sku must be 1 to 128 characters"}, status=400)
            body = orjson.dumps(availability(sku, rt.availability, rt.locations.by_id))
            return self.bytes(body, content_type="application/json")
