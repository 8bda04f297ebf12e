"""Line-level cancellation (domain/cancellation.py through the order machine)."""

from __future__ import annotations

import pytest

from domain.orders import Deadline, LifecycleError, LoadEffect, ReleaseEffect, StockEffect
from streams.records import WebOrder
from tests.unit.test_orders_machine import T0, World, order, published, reserves


def cancel_lines(lines: list[tuple[str, int]], event_id: str = "cx-1") -> WebOrder:
    return WebOrder.model_validate(
        {
            "event_id": event_id,
            "occurred_at": T0,
            "type": "order_cancelled",
            "order_id": "O-1",
            "lines": [{"sku": s, "qty": q} for s, q in lines],
        }
    )


def routed_world() -> World:
    w = World({"SKU-1": {"ST-A": 10}, "SKU-2": {"ST-A": 10}})
    w.place_and_route(order(lines=[("SKU-1", 3, 10.0), ("SKU-2", 2, 5.0)]))
    return w


def test_a_partial_line_cancellation_releases_exactly_its_units() -> None:
    w = routed_world()
    effects = w.run("cancel", cancel_lines([("SKU-1", 1)]))
    releases = [e for e in effects if isinstance(e, StockEffect) and e.kind == "release"]
    assert [(e.sku, e.qty, e.reservation_id) for e in releases] == [("SKU-1", 1, "O-1-S1/SKU-1")]
    assert not [e for e in effects if isinstance(e, ReleaseEffect)]  # the slot stays
    # store-load counts what remains to prepare there (domain/load.py shrink)
    assert [e for e in effects if isinstance(e, LoadEffect)] == [
        LoadEffect("shrink", "ST-A", "O-1-S1", units=4)
    ]
    assert w.shipment().lines == {"SKU-1": 2, "SKU-2": 2}
    (ev,) = published(effects, "order_events")
    assert ev["change"] == "lines_cancelled" and ev["order_status"] == "routed"
    assert ev["detail"]["released"] == [{"shipment_id": "O-1-S1", "sku": "SKU-1", "qty": 1}]
    (ro,) = published(effects, "routed_orders")
    assert ro["shipments"][0]["lines"] == [{"sku": "SKU-1", "qty": 2}, {"sku": "SKU-2", "qty": 2}]


def test_a_whole_line_is_released_whole_and_the_last_line_frees_the_slot() -> None:
    w = routed_world()
    effects = w.run("cancel", cancel_lines([("SKU-2", 2)]))
    assert [(e.sku, e.qty) for e in effects if isinstance(e, StockEffect)] == [("SKU-2", 0)]
    effects = w.run("cancel", cancel_lines([("SKU-1", 3)], event_id="cx-2"))
    assert [(e.shipment_id, e.skus) for e in effects if isinstance(e, ReleaseEffect)] == [
        ("O-1-S1", ("SKU-1",))
    ]
    assert Deadline("O-1-S1", None) in effects
    assert w.state is not None and w.state.cancelled and w.state.status == "cancelled"
    assert w.shipment().status == "cancelled"


@pytest.mark.parametrize(
    ("lines", "reason"),
    [
        ([("SKU-9", 1)], "unknown line 'SKU-9'"),
        ([("SKU-1", 4)], "exceeds the 3 ordered and not yet cancelled"),
    ],
)
def test_bad_line_cancellations_are_refused_and_change_nothing(
    lines: list[tuple[str, int]], reason: str
) -> None:
    w = routed_world()
    before = w.state.to_dict() if w.state else None
    with pytest.raises(LifecycleError, match=reason):
        w.run("cancel", cancel_lines(lines))
    assert w.state is not None and w.state.to_dict() == before


def test_shipped_units_cannot_be_cancelled() -> None:
    w = routed_world()
    for step in ("accepted", "picked", "packed", "label_printed", "shipped"):
        w.step(step, "O-1-S1", "ST-A")
    with pytest.raises(LifecycleError, match="already shipped or collected"):
        w.run("cancel", cancel_lines([("SKU-1", 1)]))


def test_a_repeated_cancellation_is_applied_once() -> None:
    w = routed_world()
    w.run("cancel", cancel_lines([("SKU-1", 1)]))
    assert w.run("cancel", cancel_lines([("SKU-1", 1)])) == []
    with pytest.raises(LifecycleError, match="exceeds the 2 ordered and not yet cancelled"):
        w.run("cancel", cancel_lines([("SKU-1", 3)], event_id="cx-2"))
    assert w.state is not None and w.state.cancelled_lines == {"SKU-1": 1}


def test_cancelling_lines_of_a_round_in_progress_routes_the_rest_again() -> None:
    w = World({"SKU-1": {"ST-A": 10}, "SKU-2": {"ST-A": 10}})
    asks = reserves(w.run("place", order(lines=[("SKU-1", 3, 10.0), ("SKU-2", 2, 5.0)])))
    effects = w.run("cancel", cancel_lines([("SKU-2", 2)]))
    assert not [e for e in effects if isinstance(e, ReleaseEffect)]  # nothing granted yet
    (again,) = reserves(effects)
    assert again.lines == (("SKU-1", 3),)
    late = w.answer(asks[0])  # the abandoned round's answer arrives: given back whole
    assert [e.shipment_id for e in late if isinstance(e, ReleaseEffect)] == ["O-1-S1"]
    w.answer(again)
    assert w.state is not None and w.shipment(0).lines == {"SKU-1": 3}
    assert w.state.status == "routed"
