"""Fixture data for the store app: one store's day as the public topics carry it.

Why: the store and returns pages must be testable (Streamlit AppTest) and demonstrable without
a broker. The messages are built in the exact JSON shapes of streams/records.py (placed orders,
routing decisions, order events, store load, a refund) and folded through
`dashboard.store.fold`, the path live data takes. Every step of the workflow is represented:
`FIXTURE_ORDERS` names the order waiting at each step.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel

from dashboard.store import (
    H_LOCATIONS,
    H_ORDER_EVENTS,
    H_REFUNDS,
    H_ROUTED,
    H_STORE_LOAD,
    H_WEB_ORDERS,
    StoreState,
)
from streams.records import OrderEvent, Refund, RoutedOrder, StoreLoad, WebOrder

FIXTURE_STORE = "ST-FIX-01"
FIXTURE_OTHER_STORE = "ST-FIX-02"
FIXTURE_WAREHOUSE = "WH-FIX-01"
FIXTURE_RETURN_ORDER = "O-FIX-09"

# order id -> (mode, shipment status, minutes since routing, lines, destination store)
FIXTURE_ORDERS: dict[str, tuple[str, str, int, dict[str, int], str | None]] = {
    "O-FIX-01": ("ship_from_store", "routed", 55, {"SKU-0007": 2, "SKU-0012": 1}, None),
    "O-FIX-02": ("ship_from_store", "accepted", 48, {"SKU-0007": 1, "SKU-0031": 3}, None),
    "O-FIX-03": ("ship_from_store", "picked", 41, {"SKU-0044": 1}, None),
    "O-FIX-04": ("ship_from_store", "packed", 37, {"SKU-0012": 2, "SKU-0050": 1}, None),
    "O-FIX-05": ("click_collect", "packed", 33, {"SKU-0031": 1}, None),
    "O-FIX-06": ("click_collect", "ready_for_pickup", 29, {"SKU-0061": 2}, None),
    "O-FIX-07": ("ship_from_store", "label_printed", 22, {"SKU-0072": 1}, None),
    "O-FIX-08": ("transfer_to_store", "in_transit", 140, {"SKU-0099": 1}, FIXTURE_STORE),
    "O-FIX-10": ("ship_from_store", "accepted", 12, {"SKU-0031": 2, "SKU-0044": 1}, None),
    FIXTURE_RETURN_ORDER: ("ship_from_store", "shipped", 300, {"SKU-0007": 2, "SKU-0080": 1}, None),
}

_LOCATIONS: tuple[dict[str, Any], ...] = (
    {
        "location_id": FIXTURE_STORE,
        "kind": "store",
        "name": "Paris Rivoli",
        "lat": 48.8606,
        "lon": 2.3376,
        "ship_from_store": True,
        "click_collect": True,
        "capacity_per_hour": 12,
        "max_backlog": 30,
        "safety_stock": 1,
        "active": True,
    },
    {
        "location_id": FIXTURE_OTHER_STORE,
        "kind": "store",
        "name": "Lyon Part-Dieu",
        "lat": 45.7606,
        "lon": 4.8590,
        "ship_from_store": True,
        "click_collect": True,
        "capacity_per_hour": 10,
        "max_backlog": 25,
        "safety_stock": 1,
        "active": True,
    },
    {
        "location_id": FIXTURE_WAREHOUSE,
        "kind": "warehouse",
        "name": "DC Orléans",
        "lat": 47.9030,
        "lon": 1.9093,
        "capacity_per_hour": 400,
        "max_backlog": 4000,
        "active": True,
    },
)

_PRICES = {
    "SKU-0007": 19.99,
    "SKU-0012": 7.5,
    "SKU-0031": 34.0,
    "SKU-0044": 12.25,
    "SKU-0050": 59.9,
    "SKU-0061": 8.0,
    "SKU-0072": 24.5,
    "SKU-0080": 45.0,
    "SKU-0099": 99.0,
}
_CUSTOMERS = (
    ("Ada Lovelace", ["12 rue de Rivoli", "75004 Paris"], "75004"),
    ("Alan Turing", ["3 avenue Victoria", "75001 Paris"], "75001"),
    ("Grace Hopper", ["40 boulevard de Sébastopol", "75003 Paris"], "75003"),
)
_HISTORY = {
    "routed": ["routed"],
    "accepted": ["routed", "accepted"],
    "picked": ["routed", "accepted", "picked"],
    "packed": ["routed", "accepted", "picked", "packed"],
    "label_printed": ["routed", "accepted", "picked", "packed", "label_printed"],
    "ready_for_pickup": ["routed", "accepted", "picked", "packed", "ready_for_pickup"],
    "shipped": ["routed", "accepted", "picked", "packed", "label_printed", "shipped"],
    "in_transit": ["routed", "accepted", "picked", "packed", "label_printed", "shipped"],
}
_ORDER_STATUS = {
    "routed": "routed",
    "ready_for_pickup": "ready_for_pickup",
    "shipped": "shipped",
    "in_transit": "in_preparation",
}

Message = tuple[str, dict[str, Any] | None, str | None]


def _valid(model: type[BaseModel], **fields: Any) -> dict[str, Any]:
    """The message as published: validated by its output model, dumped as JSON."""
    return model.model_validate(fields).model_dump(mode="json")


def build_messages(now: datetime) -> list[Message]:
    """The fixture's messages (topic handle, value, key), oldest first within each order."""
    out: list[Message] = [(H_LOCATIONS, dict(loc), loc["location_id"]) for loc in _LOCATIONS]
    for i, (order_id, (mode, status, minutes, lines, dest)) in enumerate(FIXTURE_ORDERS.items()):
        routed_at = now - timedelta(minutes=minutes)
        name, address, postcode = _CUSTOMERS[i % len(_CUSTOMERS)]
        origin = FIXTURE_WAREHOUSE if mode == "transfer_to_store" else FIXTURE_STORE
        delivery: dict[str, Any] = {
            "mode": "home",
            "service": "express" if i % 3 == 0 else "standard",
        }
        if mode in ("click_collect", "transfer_to_store"):
            delivery = {"mode": "click_collect", "pickup_location_id": FIXTURE_STORE}
        placed = WebOrder.model_validate(
            {
                "event_id": f"fx-{order_id}",
                "occurred_at": routed_at - timedelta(seconds=2),
                "type": "order_placed",
                "order_id": order_id,
                "customer": {
                    "lat": 48.85,
                    "lon": 2.35,
                    "postcode": postcode,
                    "name": name,
                    "address_lines": address,
                },
                "delivery": delivery,
                "lines": [
                    {"sku": sku, "qty": qty, "unit_price": _PRICES[sku]}
                    for sku, qty in lines.items()
                ],
                "currency": "EUR",
                "payment": {"method": "card", "reference": f"PSP-{order_id}"},
            }
        )
        out.append((H_WEB_ORDERS, placed.model_dump(mode="json"), order_id))
        sid = f"{order_id}-S1"
        ship_lines = [{"sku": sku, "qty": qty} for sku, qty in sorted(lines.items())]
        routed = _valid(
            RoutedOrder,
            order_id=order_id,
            attempt=1,
            status="routed",
            decided_at=routed_at,
            shipments=[
                {"shipment_id": sid, "location_id": origin, "mode": mode, "lines": ship_lines}
            ],
            reasons={"rule": "single_location"},
        )
        out.append((H_ROUTED, routed, order_id))
        steps = _HISTORY[status]
        for n, step in enumerate(steps):
            at = routed_at + timedelta(minutes=min(n * 3, max(minutes - 1, 0)))
            shown = "in_transit" if status == "in_transit" and n == len(steps) - 1 else step
            order_status = (
                _ORDER_STATUS.get(shown, "in_preparation")
                if n == len(steps) - 1
                else ("routed" if step == "routed" else "in_preparation")
            )
            ev = _valid(
                OrderEvent,
                event_id=f"fx/{order_id}/{n}",
                order_id=order_id,
                occurred_at=at,
                change=step,
                order_status=order_status,
                shipment_id=sid,
                location_id=origin,
                shipments=[
                    {
                        "shipment_id": sid,
                        "location_id": origin,
                        "mode": mode,
                        "status": shown,
                        "lines": ship_lines,
                        "destination_location_id": dest,
                    }
                ],
            )
            out.append((H_ORDER_EVENTS, ev, order_id))
    # one earlier return of the return order: 1 of its 2 SKU-0007, resellable, refunded
    returned_at = now - timedelta(minutes=20)
    rid = "fx-return-1"
    out.append(
        (
            H_ORDER_EVENTS,
            _valid(
                OrderEvent,
                event_id=f"fx/{FIXTURE_RETURN_ORDER}/return",
                order_id=FIXTURE_RETURN_ORDER,
                occurred_at=returned_at,
                change="returned",
                order_status="partially_returned",
                location_id=FIXTURE_OTHER_STORE,
                shipments=[
                    {
                        "shipment_id": f"{FIXTURE_RETURN_ORDER}-S1",
                        "location_id": FIXTURE_STORE,
                        "mode": "ship_from_store",
                        "status": "shipped",
                        "lines": [{"sku": "SKU-0007", "qty": 2}, {"sku": "SKU-0080", "qty": 1}],
                    }
                ],
                detail={
                    "return_event_id": rid,
                    "lines": [{"sku": "SKU-0007", "qty": 1, "resellable": True}],
                    "refund_amount": 19.99,
                },
            ),
            FIXTURE_RETURN_ORDER,
        )
    )
    out.append(
        (
            H_REFUNDS,
            _valid(
                Refund,
                refund_id=f"RF-{rid}",
                order_id=FIXTURE_RETURN_ORDER,
                return_event_id=rid,
                amount=19.99,
                currency="EUR",
                payment={"method": "card", "reference": f"PSP-{FIXTURE_RETURN_ORDER}"},
                lines=[{"sku": "SKU-0007", "qty": 1, "unit_price": 19.99, "amount": 19.99}],
                issued_at=returned_at,
            ),
            FIXTURE_RETURN_ORDER,
        )
    )
    open_orders = sum(1 for v in FIXTURE_ORDERS.values() if v[1] not in ("shipped",))
    for loc_id, open_n, cap, backlog in (
        (FIXTURE_STORE, open_orders, 12, 30),
        (FIXTURE_OTHER_STORE, 3, 10, 25),
        (FIXTURE_WAREHOUSE, 40, 400, 4000),
    ):
        load = StoreLoad(
            location_id=loc_id,
            kind="warehouse" if loc_id == FIXTURE_WAREHOUSE else "store",
            open_orders=open_n,
            open_units=open_n * 2,
            capacity_per_hour=cap,
            max_backlog=backlog,
            saturation=round(open_n / cap, 3),
            backlog_saturation=round(open_n / backlog, 3),
            oldest_open_age_s=55 * 60.0,
            oldest_open_since=now - timedelta(minutes=55),
            prep_time_s={"routed->accepted": 420.0, "accepted->picked": 600.0},
            updated_at=now - timedelta(seconds=5),
        )
        out.append((H_STORE_LOAD, load.model_dump(mode="json"), loc_id))
    return out


def build_store_state(now: datetime | None = None) -> StoreState:
    """A StoreState holding the fixture (folded like live data)."""
    state = StoreState()
    state.fold_many(build_messages(now or datetime.now(UTC)))
    return state
