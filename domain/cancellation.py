"""Line-level cancellation: which of an order's units a cancellation of some lines takes.

An `order_cancelled` with `lines` cancels those quantities only. An order's units of a SKU sit
in one of a few places: awaiting the answers to the order's preorder asks (nothing is placed
before every answer is in), waiting as a backorder, unroutable, queued or in a reservation round
(routing in progress), in an open shipment (reserved at a location, not yet gone), or gone
(shipped, collected, in transit to a pickup store). Only what is not gone may be cancelled, and
the units are taken from the places where cancelling costs least first: what no location holds
yet (awaiting the preorder answers, backorder, unroutable, queued, round in progress), then
open shipments, least advanced first (a routed shipment before one a store already picked). A
request that cannot be met in full is refused whole, with the precise reason, so nothing is
half-applied.

Pure: no effects here; the order machine (domain/orders.py) turns the allocation into stock
releases and events.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

# open shipment statuses, least advanced first: the order in which their units are cancelled
STEP_RANK = {
    "routed": 0,
    "accepted": 1,
    "picked": 2,
    "packed": 3,
    "label_printed": 4,
    "ready_for_pickup": 5,
}


class CancelRefused(ValueError):
    """The cancellation cannot be applied (the reason is the dead letter's)."""


@dataclass(frozen=True)
class OpenShipment:
    shipment_id: str
    status: str
    lines: Mapping[str, int]


@dataclass(frozen=True)
class Holdings:
    """Where an order's units are now, per SKU."""

    order_id: str
    ordered: Mapping[str, int]
    cancelled: Mapping[str, int]  # by earlier line cancellations
    gone: Mapping[str, int]  # shipped, collected or in transit: never cancellable
    backordered: Mapping[str, int]
    unroutable: Mapping[str, int]
    queued: Mapping[str, int]
    pending: Mapping[str, int]  # lines of the reservation round in progress
    shipments: Sequence[OpenShipment]
    # every line not cancelled while the order awaits its preorder answers (nothing placed yet)
    awaiting: Mapping[str, int] = field(default_factory=dict)


@dataclass
class Take:
    """The units a cancellation takes from each place."""

    awaiting: dict[str, int] = field(default_factory=dict)
    backordered: dict[str, int] = field(default_factory=dict)
    unroutable: dict[str, int] = field(default_factory=dict)
    queued: dict[str, int] = field(default_factory=dict)
    pending: dict[str, int] = field(default_factory=dict)
    shipments: dict[str, dict[str, int]] = field(default_factory=dict)  # shipment -> sku -> qty


def allocate(h: Holdings, asked: Mapping[str, int]) -> Take:
    """The units `asked` (sku -> qty) takes, or CancelRefused: an unknown line, more than was
    ordered and not yet cancelled, or units already shipped or collected."""
    for sku, qty in sorted(asked.items()):
        if sku not in h.ordered:
            raise CancelRefused(f"unknown line {sku!r} in order {h.order_id}")
        left = h.ordered[sku] - h.cancelled.get(sku, 0)
        if qty > left:
            raise CancelRefused(
                f"cancellation of {qty} x {sku} exceeds the {left} ordered and not yet "
                f"cancelled in order {h.order_id}"
            )
        cancellable = left - h.gone.get(sku, 0)
        if qty > cancellable:
            raise CancelRefused(
                f"cannot cancel {qty} x {sku} in order {h.order_id}: {h.gone.get(sku, 0)} "
                f"already shipped or collected, only {max(0, cancellable)} can be cancelled"
            )
    take = Take()
    by_rank = sorted(h.shipments, key=lambda s: (STEP_RANK.get(s.status, 9), s.shipment_id))
    for sku, qty in sorted(asked.items()):
        need = qty
        for place, have in (
            (take.awaiting, h.awaiting),
            (take.backordered, h.backordered),
            (take.unroutable, h.unroutable),
            (take.queued, h.queued),
            (take.pending, h.pending),
        ):
            got = min(need, have.get(sku, 0))
            if got:
                place[sku] = got
                need -= got
        for s in by_rank:
            got = min(need, s.lines.get(sku, 0))
            if got:
                take.shipments.setdefault(s.shipment_id, {})[sku] = got
                need -= got
        if need:  # the holdings do not add up: refuse rather than half-apply
            raise CancelRefused(
                f"cannot cancel {qty} x {sku} in order {h.order_id}: only {qty - need} found "
                f"not yet shipped"
            )
    return take
