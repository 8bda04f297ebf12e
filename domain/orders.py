"""An order's whole life, as a pure state machine: routing rounds, store workflow, returns.

The order agent feeds it one input at a time (a placed or cancelled order, a reservation answer
from a SKU's owner, an acceptance time-out, a store's fulfilment event, a return) and carries
out the effects it returns: stock ops, load ops, published decisions and order events, refunds,
dead letters. Nothing here touches Kafka, so every rule is unit-tested directly.

Routing is a small saga, because stock is partitioned by SKU and another worker may be
reserving the same units: decide on the recent availability view, ask each SKU's owner to
reserve (atomic there), and when any answer is "no" release the others and decide again with
the owner's figure for that SKU. Only when every reservation of a round holds is the decision
published, so a published shipment always has its stock.

Rejection, acceptance time-out and short pick release the shipment's stock and route its lines
again (never back to a location that rejected the order), up to `max_attempts` decisions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any

from domain.backorders import DAY_S, WAITABLE, Rule, placeable
from domain.calendar import NeverPrepares, calendar_of, preparation_deadline
from domain.cancellation import CancelRefused, Holdings, OpenShipment, allocate
from domain.geo import great_circle_km
from domain.promise import CLICK_COLLECT, TRANSFER, preorder_promise
from domain.routing import (
    MODE_BY_KIND,
    LoadView,
    RoutingPolicy,
    RoutingRequest,
    StockView,
    decide,
    merge_lines,
)
from streams.records import (
    BackorderedLine,
    BackorderRetry,
    FulfilmentEvent,
    Location,
    OrderEvent,
    OrderStatus,
    PreorderAccepted,
    PreorderDropped,
    PreorderRefused,
    Refund,
    RefundLine,
    RefundPayment,
    ReservationResult,
    Return,
    RoutedOrder,
    RoutedShipment,
    ShipmentLine,
    ShipmentReservation,
    ShipmentState,
    WebOrder,
)

MAX_ROUNDS = 8  # reservation rounds per decision before the contended lines are unroutable

# shipment statuses that still hold stock or work at a location
OPEN = {"routed", "accepted", "picked", "packed", "label_printed", "ready_for_pickup"}
# home delivery / transfer path, and click & collect path
NEXT_HOME = {
    "routed": {"accepted"},
    "accepted": {"picked"},
    "picked": {"packed"},
    "packed": {"label_printed"},
    "label_printed": {"shipped"},
}
NEXT_COLLECT = {
    "routed": {"accepted"},
    "accepted": {"picked"},
    "picked": {"packed"},
    "packed": {"ready_for_pickup"},
    "ready_for_pickup": {"collected"},
}
# statuses in which a shipment is still to be handed to the carrier (or shelved for pickup)
PREPARING = {"routed", "accepted", "picked", "packed", "label_printed"}
NEXT_IN_TRANSIT = {"in_transit": {"ready_for_pickup"}, "ready_for_pickup": {"collected"}}


class LifecycleError(Exception):
    """An input that breaks the order's rules: it goes to dead-letters with this reason."""


# ---- effects ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class StockEffect:
    kind: str  # reserve | release | consume | short | adjust
    sku: str
    location_id: str
    qty: int = 0
    reservation_id: str | None = None


@dataclass(frozen=True)
class ReserveEffect:
    """Ask the location's owner for a slot and every line's units, all or nothing."""

    shipment_id: str
    location_id: str
    lines: tuple[tuple[str, int], ...]
    due: float | None = None  # the shipment's ship_by (epoch s): store-load counts it late after


@dataclass(frozen=True)
class ReleaseEffect:
    """Give back a shipment's units (each of `skus`) and its slot at the location."""

    shipment_id: str
    location_id: str
    skus: tuple[str, ...]


@dataclass(frozen=True)
class LoadEffect:
    kind: str  # open | close | step | shrink (units: what the shipment still holds)
    location_id: str
    shipment_id: str
    units: int = 0
    step: str | None = None
    seconds: float = 0.0


@dataclass(frozen=True)
class Deadline:
    shipment_id: str
    at: float | None  # epoch seconds; None clears it


@dataclass(frozen=True)
class ShipByCheck:
    """Check the shipment once the network clock passes `at` (its ship_by, epoch seconds)."""

    shipment_id: str
    at: float


@dataclass(frozen=True)
class BackorderEffect:
    """To the SKU's backorder queue (domain/backorders.py): the order `wait`s for `qty` units
    (since its occurred_at, epoch s) or `leave`s it."""

    kind: str  # wait | leave | preorder (ask for qty units of the supply expected) | shrink
    sku: str
    qty: int = 0
    since: float = 0.0
    reason: str | None = None


@dataclass(frozen=True)
class Refusal:
    """The order is refused whole after the fact (a preorder the SKU's queue refused): to
    dead-letters with `reason` and the order_placed message (`source`: topic, partition,
    offset, its bytes as text)."""

    reason: str
    source: tuple[str, int, int, str] | None


# Stock and load effects become positioned ops (streams.records StockOp, LoadOp) one-to-one in the
# order agent, which knows the input's position; the records are published as they are.
Effect = (
    StockEffect
    | ReserveEffect
    | ReleaseEffect
    | LoadEffect
    | Deadline
    | ShipByCheck
    | BackorderEffect
    | RoutedOrder
    | OrderEvent
    | Refund
    | Refusal
)


# ---- state -----------------------------------------------------------------------------------


@dataclass
class Shipment:
    shipment_id: str
    location_id: str
    mode: str
    lines: dict[str, int]
    status: str = "routed"
    destination_location_id: str | None = None
    history: dict[str, str] = field(default_factory=dict)  # step -> ISO time
    attempt: int = 1
    accept_by: float | None = None  # acceptance deadline (epoch s, network time) once routed
    # the promise when routed (ISO; domain/promise.py), and whether ship_by passed unshipped
    ship_by: str | None = None
    promised_delivery: str | None = None
    ready_for_pickup_by: str | None = None
    late: bool = False

    def rid(self, sku: str) -> str:
        return f"{self.shipment_id}/{sku}"

    @property
    def units(self) -> int:
        return sum(self.lines.values())

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["lines"] = dict(self.lines)
        d["history"] = dict(self.history)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Shipment:
        d = dict(d)
        d["lines"] = dict(d["lines"])
        d["history"] = dict(d.get("history") or {})
        return cls(**d)


@dataclass
class Round:
    """One reservation round of a routing decision."""

    lines: dict[str, int]
    plans: list[dict[str, Any]]  # shipment dicts planned, not yet confirmed
    awaiting: list[str]  # shipment ids (reservation ids "sid/sku" in rounds from before 2026-11)
    ok: list[str] = field(default_factory=list)
    failed: dict[str, int] = field(default_factory=dict)  # "sku@loc" -> free units at the owner
    overrides: dict[str, int] = field(default_factory=dict)
    tries: int = 1
    reasons: dict[str, Any] = field(default_factory=dict)
    saturated: list[str] = field(default_factory=list)  # owners that had no slot left

    def to_dict(self) -> dict[str, Any]:
        return {
            "lines": dict(self.lines),
            "plans": [Shipment.from_dict(p).to_dict() for p in self.plans],
            "awaiting": list(self.awaiting),
            "ok": list(self.ok),
            "failed": dict(self.failed),
            "overrides": dict(self.overrides),
            "tries": self.tries,
            "reasons": self.reasons,
            "saturated": list(self.saturated),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Round:
        return cls(**Round(**d).to_dict())


@dataclass
class OrderState:
    order_id: str
    order: dict[str, Any]  # the order_placed message, as JSON
    status: str = "routed"
    attempt: int = 0
    shipments: dict[str, Shipment] = field(default_factory=dict)
    excluded: list[str] = field(default_factory=list)
    pending: Round | None = None
    queued: dict[str, int] = field(default_factory=dict)
    unroutable: dict[str, int] = field(default_factory=dict)
    delivered: dict[str, int] = field(default_factory=dict)  # shipped or collected units
    returned: dict[str, int] = field(default_factory=dict)
    cancelled: bool = False
    cancelled_lines: dict[str, int] = field(default_factory=dict)  # by line cancellations
    uncounted: int = 0  # decisions that do not count against max_attempts
    backordered: dict[str, int] = field(default_factory=dict)  # units waiting for stock
    retrying: list[str] = field(default_factory=list)  # SKUs whose turn came: being routed
    preorders: dict[str, str] = field(default_factory=dict)  # SKU -> expected date (ISO)
    preorder_promised: dict[str, str] = field(default_factory=dict)  # SKU -> date promised (ISO)
    asks: dict[str, int] = field(default_factory=dict)  # preorder lines awaiting their answers
    # SKU -> expected date (ISO) of a preorder a short receipt dropped: no longer promised,
    # but its line still waits max_wait_days from that date
    dropped: dict[str, str] = field(default_factory=dict)
    placed_from: list[Any] | None = None  # [topic, partition, offset, text]: asks, refusal
    refused: str | None = None  # why the order was refused whole after it was placed
    refusal: dict[str, Any] | None = None  # the refusal: sku, asked, left, skus asked
    next_shipment: int = 1
    event_ids: list[str] = field(default_factory=list)
    positions: dict[str, int | list[int]] = field(default_factory=dict)  # streams/bundles.py
    promised_date: str | None = None  # last published (ISO date)
    # the ops to location owners that the inputs applied since the last commit sent and that
    # nothing in this state implies (releases above all), as sent (with their positions):
    # agents/orders.py sends an input's again, unchanged, when it is read again after a crash
    sent_ops: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["shipments"] = {k: s.to_dict() for k, s in self.shipments.items()}
        d["pending"] = None if self.pending is None else self.pending.to_dict()
        for name in ("queued", "unroutable", "delivered", "returned", "positions"):
            d[name] = dict(d[name])
        d["cancelled_lines"] = dict(self.cancelled_lines)
        d["backordered"] = dict(self.backordered)
        d["retrying"] = list(self.retrying)
        d["preorders"] = dict(self.preorders)
        d["preorder_promised"] = dict(self.preorder_promised)
        d["asks"] = dict(self.asks)
        d["dropped"] = dict(self.dropped)
        d["placed_from"] = None if self.placed_from is None else list(self.placed_from)
        d["refusal"] = None if self.refusal is None else dict(self.refusal)
        d["excluded"] = list(self.excluded)
        d["event_ids"] = list(self.event_ids)
        d["sent_ops"] = [dict(op) for op in self.sent_ops]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> OrderState:
        d = dict(d)
        d["shipments"] = {k: Shipment.from_dict(s) for k, s in d["shipments"].items()}
        d["pending"] = None if d["pending"] is None else Round.from_dict(d["pending"])
        for name in ("queued", "unroutable", "delivered", "returned", "positions"):
            d[name] = dict(d[name])
        d["cancelled_lines"] = dict(d.get("cancelled_lines") or {})  # states from before 2026-12
        d["backordered"] = dict(d.get("backordered") or {})
        d["retrying"] = list(d.get("retrying") or [])
        d["preorders"] = dict(d.get("preorders") or {})
        d["preorder_promised"] = dict(d.get("preorder_promised") or {})  # before 2026-12
        d["asks"] = dict(d.get("asks") or {})
        d["dropped"] = dict(d.get("dropped") or {})  # states from before 2026-12
        d["excluded"] = list(d["excluded"])
        d["event_ids"] = list(d["event_ids"])
        d["sent_ops"] = [dict(op) for op in d.get("sent_ops") or []]  # before 2026-12
        return cls(**d)

    # -- derived --------------------------------------------------------------------------------
    def active(self) -> list[Shipment]:
        return [s for s in self.shipments.values() if s.status not in ("rejected", "cancelled")]

    def derive_status(self, *, rerouting: bool = False) -> OrderStatus:
        """The order's status from its shipments. `rerouting`: lines of a rejected (or timed
        out, or short-picked) shipment are about to be routed again; with no other shipment
        active the order is then `rerouting`, never `cancelled` (that is only order_cancelled).
        """
        if self.refused:
            return "unroutable"  # refused whole: nothing was ever placed
        if self.cancelled and not any(
            s.status in ("shipped", "collected", "in_transit") for s in self.shipments.values()
        ):
            return "cancelled"
        if self.asks:
            return "backordered"  # awaiting its preorder answers: nothing placed yet
        shipped_units = sum(self.delivered.values())
        returned_units = sum(self.returned.values())
        if returned_units:
            return "returned" if returned_units >= shipped_units else "partially_returned"
        active = self.active()
        if not active:
            if rerouting or ((self.pending is not None or self.queued) and self.shipments):
                return "rerouting"
            if self.pending is not None or self.queued:
                return "routed"
            if self.backordered or self.retrying:
                return "backordered"
            if self.unroutable:
                return "unroutable"
            return "cancelled" if self.cancelled else "rerouting"
        done = [s for s in active if s.status in ("shipped", "collected")]
        waiting = self.pending or self.queued or self.backordered or self.retrying
        if len(done) == len(active) and not waiting:
            if all(s.status == "collected" for s in active):
                return "collected"
            return "shipped"
        if done:
            return "partially_shipped"
        if all(s.status == "ready_for_pickup" for s in active):
            return "ready_for_pickup"
        if any(s.status != "routed" for s in active):
            return "in_preparation"
        return "routed"


# ---- the machine -----------------------------------------------------------------------------


@dataclass
class Context:
    """What the machine may consult besides the order itself: the world as the worker sees it."""

    now: datetime
    locations: Mapping[str, Location]
    stock: StockView
    loads: Mapping[str, LoadView]
    policy: RoutingPolicy
    acceptance_timeout_s: float
    event_prefix: str  # deterministic prefix for the order-event ids this input produces
    waiting: Mapping[str, int] = field(default_factory=dict)  # sku -> units backordered
    # the input: topic, partition, offset, bytes (kept while a preorder is answered)
    source: tuple[str, int, int, bytes] | None = None


class _Overlay:
    """The availability view corrected by what owners told us in this decision's failed rounds."""

    def __init__(self, base: StockView, overrides: Mapping[str, int]) -> None:
        self.base, self.overrides = base, overrides

    def stock_of(self, sku: str) -> Mapping[str, int]:
        view = self.base.stock_of(sku)
        fixes = {
            k.rsplit("@", 1)[1]: v for k, v in self.overrides.items() if k.startswith(sku + "@")
        }
        if not fixes:
            return view
        merged = dict(view)
        merged.update(fixes)
        return merged


class Machine:
    """Applies one input to an OrderState, collecting effects. One instance per input."""

    def __init__(self, state: OrderState | None, ctx: Context) -> None:
        self.state = state
        self.ctx = ctx
        self.effects: list[Effect] = []
        self._n_events = 0

    # -- inputs ---------------------------------------------------------------------------------
    def place(self, order: WebOrder) -> None:
        if self.state is not None:
            if order.event_id in self.state.event_ids:
                return  # the same order_placed again: ignored
            raise LifecycleError(f"order {order.order_id} was already placed")
        if order.delivery and order.delivery.mode == "click_collect":
            pid = order.delivery.pickup_location_id
            if pid not in self.ctx.locations:
                raise LifecycleError(f"unknown pickup_location_id {pid!r}")
        asks = dict(merge_lines((ln.sku, ln.qty) for ln in order.lines if ln.preorder))
        if asks and not self.ctx.policy.backorder.rule(order.channel).enabled:
            raise LifecycleError(
                f"preorder of {min(asks)}: backorders are not enabled for channel {order.channel}"
            )
        self.state = OrderState(order_id=order.order_id, order=order.model_dump(mode="json"))
        self.state.event_ids.append(order.event_id)
        if asks:
            # each SKU's queue owner grants the preorder on the supply expected and not yet
            # claimed, or refuses it: nothing is routed nor published before every answer
            self.state.asks = asks
            if self.ctx.source is not None:
                topic, partition, offset, raw = self.ctx.source
                text = raw.decode("utf-8", "backslashreplace")
                self.state.placed_from = [topic, partition, offset, text]
            for sku, qty in sorted(asks.items()):
                self.effects.append(BackorderEffect("preorder", sku, qty, since=self._since()))
            return
        self._route_placed(dict(merge_lines((ln.sku, ln.qty) for ln in order.lines)))

    def _route_placed(self, lines: dict[str, int]) -> None:
        """Route a new order's lines, behind the orders already waiting for their SKUs."""
        behind = {sku: q for sku, q in lines.items() if self.ctx.waiting.get(sku, 0) > 0}
        if behind and self._rule().enabled:
            # earlier orders wait for these SKUs: this one queues behind them, first come
            # first served (ship_complete: the whole order waits)
            if self._ship_complete():
                behind = lines
            self._backorder(behind, {"unroutable": "behind_backorders"})
            lines = {sku: q for sku, q in lines.items() if sku not in behind}
            if not lines:
                return
        self._start_decision(lines)

    def cancel(self, order: WebOrder) -> None:
        st = self._require()
        if order.event_id in st.event_ids:
            return
        if st.refused:
            raise LifecycleError(f"order {st.order_id} was refused: {st.refused}")
        if st.cancelled:
            raise LifecycleError(f"order {st.order_id} is already cancelled")
        if order.lines:
            self._cancel_lines(order)
            return
        if (
            st.shipments
            and all(
                s.status in ("shipped", "collected", "in_transit", "rejected")
                for s in st.shipments.values()
            )
            and st.delivered
        ):
            raise LifecycleError(f"order {st.order_id} has shipped; it can only be returned")
        st.event_ids.append(order.event_id)
        st.cancelled = True
        released = []
        for s in st.shipments.values():
            if s.status in OPEN:
                self._release_shipment(s)
                s.status = "cancelled"
                released.append(s.shipment_id)
        if st.pending is not None:
            self._release_round(st.pending)
            st.pending = None
        st.queued = {}
        asked, st.asks, st.placed_from = set(st.asks), {}, None
        self._leave_backorders(set(st.backordered) | set(st.retrying) | asked, "cancelled")
        self._order_event("cancelled", detail={"released_shipments": released})

    def _cancel_lines(self, order: WebOrder) -> None:
        """Cancel only the quantities of `order.lines` (domain/cancellation.py says where from):
        the units no location holds are dropped, a round in progress is abandoned and the rest
        of it routed again, open shipments give back exactly the cancelled units (the whole
        shipment, slot included, when nothing is left in it). While the order awaits its
        preorder answers nothing is placed: the asks shrink or are withdrawn, and the order
        goes on when the answers left are all in."""
        st = self._require()
        asked = dict(merge_lines((ln.sku, ln.qty) for ln in order.lines))
        holdings = Holdings(
            order_id=st.order_id,
            ordered=dict(merge_lines((ln["sku"], ln["qty"]) for ln in st.order["lines"])),
            cancelled=st.cancelled_lines,
            gone=self._gone(),
            backordered=st.backordered,
            unroutable=st.unroutable,
            queued=st.queued,
            pending=st.pending.lines if st.pending is not None else {},
            shipments=[
                OpenShipment(s.shipment_id, s.status, s.lines)
                for s in st.shipments.values()
                if s.status in OPEN and not _gone(s)
            ],
            awaiting=self._remaining() if st.asks else {},
        )
        try:
            take = allocate(holdings, asked)
        except CancelRefused as exc:
            raise LifecycleError(str(exc)) from None
        st.event_ids.append(order.event_id)
        _subtract(st.backordered, take.backordered)
        for sku in sorted(take.backordered):
            if sku in st.backordered:
                self.effects.append(self._wait(sku))
            else:
                self._leave_backorders({sku}, "cancelled")
        if take.backordered and not st.backordered:
            self.effects.append(Deadline(self._expiry_id(), None))
        _subtract(st.unroutable, take.unroutable)
        _subtract(st.queued, take.queued)
        again: dict[str, int] = {}
        if st.pending is not None and take.pending:
            rnd, st.pending = st.pending, None
            self._release_round(rnd)
            again = dict(rnd.lines)
            _subtract(again, take.pending)
            _add(again, st.queued)
            st.queued = {}
        released: list[dict[str, Any]] = []
        emptied: list[str] = []
        for sid, lines in sorted(take.shipments.items()):
            s = st.shipments[sid]
            skus = tuple(sorted(s.lines))
            for sku, qty in sorted(lines.items()):
                whole = qty >= s.lines[sku]
                self.effects.append(
                    StockEffect("release", sku, s.location_id, 0 if whole else qty, s.rid(sku))
                )
                released.append({"shipment_id": sid, "sku": sku, "qty": qty})
            _subtract(s.lines, lines)
            if s.lines:  # it goes on with fewer units: the location's open_units drop
                self.effects.append(LoadEffect("shrink", s.location_id, sid, units=s.units))
            else:
                self.effects.append(ReleaseEffect(sid, s.location_id, skus))
                self.effects.append(Deadline(sid, None))
                s.status = "cancelled"
                s.history["cancelled"] = self.ctx.now.isoformat()
                emptied.append(sid)
        _add(st.cancelled_lines, asked)
        if all(st.cancelled_lines.get(sku, 0) >= qty for sku, qty in holdings.ordered.items()):
            st.cancelled = True
        if take.awaiting:
            self._withdraw_asks()
        self._order_event(
            "lines_cancelled",
            detail={
                "lines": [ln.model_dump() for ln in _lines(asked)],
                "released": released,
                "cancelled_shipments": emptied,
            },
        )
        if again:
            self._start_decision(again, counted=False)
        elif take.awaiting:
            if not st.cancelled:
                self._answers_in()
        elif not st.cancelled and st.pending is None:
            self._publish_decision(self._decision_status(), {"lines_cancelled": True}, new=[])

    def _withdraw_asks(self) -> None:
        """Lines cancelled while the preorder answers are awaited: each asked SKU's ask
        shrinks to what is left of its line (`shrink`: a grant made or to come keeps only
        those units, the queue gives the rest back) or is withdrawn (`leave`) when nothing is
        left of it. The ops follow the ask on the SKU's queue, so they apply to its answer."""
        st = self._require()
        left = self._remaining()
        for sku in sorted(st.asks):
            qty = left.get(sku, 0)
            if qty >= st.asks[sku]:
                continue
            if qty:
                st.asks[sku] = qty
                self.effects.append(BackorderEffect("shrink", sku, qty))
            else:
                del st.asks[sku]
                st.preorders.pop(sku, None)
                st.preorder_promised.pop(sku, None)
                self.effects.append(BackorderEffect("leave", sku, reason="cancelled"))
        if not st.asks:
            st.placed_from = None

    def _answers_in(self) -> None:
        """What a cancellation left of an order awaiting preorder answers goes on when the
        answers left are all grants: no ask left, its lines are routed as a plain order's."""
        st = self._require()
        if not st.asks:
            self._route_placed(self._remaining())
        elif all(sku in st.preorders for sku in st.asks):
            self._preorders_granted()

    def _remaining(self) -> dict[str, int]:
        """The order's lines less what line cancellations took (sku -> units)."""
        st = self._require()
        ordered = merge_lines((ln["sku"], ln["qty"]) for ln in st.order["lines"])
        left = {sku: qty - st.cancelled_lines.get(sku, 0) for sku, qty in ordered}
        return {sku: qty for sku, qty in left.items() if qty > 0}

    def _gone(self) -> dict[str, int]:
        """Units shipped, collected or in transit to a pickup store: never cancellable."""
        gone: dict[str, int] = {}
        for s in self._require().shipments.values():
            if _gone(s):
                _add(gone, s.lines)
        return gone

    def reservation_result(self, msg: ReservationResult) -> None:
        st = self._require()
        rid, ok = msg.reservation_id, msg.ok
        rnd = st.pending
        if rnd is None or rid not in rnd.awaiting:
            if ok and not self._rid_is_live(rid):
                # an answer to an abandoned round (or a replayed ask): give the units back
                self.effects.append(
                    StockEffect("release", msg.sku, msg.location_id, reservation_id=rid)
                )
            return
        rnd.awaiting.remove(rid)
        if ok:
            rnd.ok.append(rid)
        else:
            rnd.failed[f"{msg.sku}@{msg.location_id}"] = msg.free_after or 0
        if not rnd.awaiting:
            self._close_round()

    def shipment_reservation(self, msg: ShipmentReservation) -> None:
        """A location owner's answer: the shipment's slot and units, or nothing (and why)."""
        if self.state is None:
            # a worker asked, then died before the order's state was kept; the placement read
            # again may decide elsewhere: the grant is held by nobody (an owner refuses the
            # same ask re-read after this release, so nothing is granted empty)
            if msg.ok:
                self.effects.append(
                    ReleaseEffect(msg.shipment_id, msg.location_id, tuple(msg.skus))
                )
            return
        st = self.state
        sid = msg.shipment_id
        rnd = st.pending
        planned = None if rnd is None else self._planned_at(rnd, sid)
        if rnd is None or sid not in rnd.awaiting or planned != msg.location_id:
            if msg.ok and not self._shipment_is_live(sid, msg.location_id):
                # an answer to an abandoned round, a replayed ask, or an ask a worker sent before
                # it died without keeping its decision (the input decided again, elsewhere, under
                # the same shipment id): give it all back there
                self.effects.append(ReleaseEffect(sid, msg.location_id, tuple(msg.skus)))
            return
        rnd.awaiting.remove(sid)
        if msg.ok:
            rnd.ok.append(sid)
        else:
            for sku, free in msg.free.items():
                rnd.failed[f"{sku}@{msg.location_id}"] = free
            if msg.saturated and msg.location_id not in rnd.saturated:
                rnd.saturated.append(msg.location_id)
        if not rnd.awaiting:
            self._close_round()

    def acceptance_timeout(self, shipment_id: str) -> None:
        st = self._require()
        if shipment_id == self._expiry_id():
            self._expire_backorders()
            return
        s = st.shipments.get(shipment_id)
        if s is None or s.status != "routed":
            return  # accepted, rejected or cancelled meanwhile: nothing to do
        self._reroute(s, "rejected", reason="acceptance timeout", short=None)

    def ship_by_passed(self, shipment_id: str) -> None:
        """The network clock passed the shipment's ship_by: a shipment still being prepared
        (not shipped, not on the pickup shelf) is late, reported once."""
        st = self._require()
        s = st.shipments.get(shipment_id)
        if s is None or s.late or s.status not in PREPARING:
            return
        s.late = True
        self._order_event("late", shipment=s, detail={"ship_by": s.ship_by, "status": s.status})

    def fulfilment(self, ev: FulfilmentEvent) -> None:
        st = self._require()
        if ev.event_id in st.event_ids:
            return
        s = st.shipments.get(ev.shipment_id)
        if s is None:
            raise LifecycleError(f"unknown shipment {ev.shipment_id!r} for order {st.order_id}")
        owner = s.destination_location_id if s.status == "in_transit" else s.location_id
        if s.status in ("ready_for_pickup", "collected") and s.destination_location_id:
            owner = s.destination_location_id
        if ev.location_id != owner:
            raise LifecycleError(
                f"location {ev.location_id!r} does not own shipment {s.shipment_id} "
                f"(held by {owner!r})"
            )
        if s.status == "cancelled" or (st.cancelled and s.status not in ("shipped", "in_transit")):
            raise LifecycleError(f"{ev.type} after cancellation of shipment {s.shipment_id}")
        if s.status == "rejected":
            raise LifecycleError(f"{ev.type} on shipment {s.shipment_id}, already rejected")
        if ev.type == "rejected":
            if s.status not in ("routed", "accepted", "picked", "packed"):
                raise LifecycleError(f"cannot reject shipment {s.shipment_id} once {s.status}")
            st.event_ids.append(ev.event_id)
            short = {ln.sku: ln.qty for ln in (ev.lines or []) if ln.qty > 0}
            self._reroute(s, "rejected", reason=ev.reason or "rejected by location", short=short)
            return
        allowed = self._next_steps(s)
        if ev.type not in allowed:
            raise LifecycleError(
                f"{ev.type} is not a valid step for shipment {s.shipment_id} in status "
                f"{s.status} (mode {s.mode}; expected {' or '.join(sorted(allowed)) or 'nothing'})"
            )
        st.event_ids.append(ev.event_id)
        self._step(s, ev)

    def return_(self, ret: Return) -> None:
        st = self._require()
        if ret.event_id in st.event_ids:
            return
        if ret.location_id not in self.ctx.locations:
            raise LifecycleError(f"unknown location_id {ret.location_id!r}")
        asked: dict[str, int] = {}
        for ln in ret.lines:
            asked[ln.sku] = asked.get(ln.sku, 0) + ln.qty
        for sku, qty in asked.items():
            left = st.delivered.get(sku, 0) - st.returned.get(sku, 0)
            if qty > left:
                raise LifecycleError(
                    f"over-return of {sku}: {qty} returned but only {left} shipped or collected "
                    f"and not yet returned for order {st.order_id}"
                )
        st.event_ids.append(ret.event_id)
        prices = {ln["sku"]: ln["unit_price"] for ln in st.order["lines"]}
        refund_lines: list[RefundLine] = []
        for ln in ret.lines:
            st.returned[ln.sku] = st.returned.get(ln.sku, 0) + ln.qty
            if ln.resellable:
                self.effects.append(StockEffect("adjust", ln.sku, ret.location_id, qty=ln.qty))
            price = float(prices.get(ln.sku, 0.0))
            refund_lines.append(
                RefundLine(
                    sku=ln.sku, qty=ln.qty, unit_price=price, amount=round(price * ln.qty, 2)
                )
            )
        amount = round(sum(r.amount for r in refund_lines), 2)
        payment = st.order["payment"]
        self.effects.append(
            Refund(
                refund_id=f"RF-{ret.event_id}",
                order_id=st.order_id,
                return_event_id=ret.event_id,
                amount=amount,
                currency=st.order["currency"],
                payment=RefundPayment(method=payment["method"], reference=payment["reference"]),
                lines=refund_lines,
                issued_at=self.ctx.now,
            )
        )
        self._order_event(
            "returned",
            location_id=ret.location_id,
            detail={
                "return_event_id": ret.event_id,
                "lines": [ln.model_dump() for ln in ret.lines],
                "refund_amount": amount,
            },
        )

    def resync(self) -> None:
        """Re-emit what the current state implies, after an input turned out to be a replay.

        A worker killed after its table write but before its outputs were flushed would
        otherwise lose them; every effect re-emitted here is idempotent downstream.
        """
        st = self.state
        if st is None:
            return
        if st.pending is not None:
            self._ask_again(st.pending)
        if not st.cancelled:
            for sku in sorted(st.backordered):
                self.effects.append(self._wait(sku))  # a join the dead worker did not send
            for sku, qty in sorted(st.asks.items()):  # a preorder ask it did not send
                self.effects.append(BackorderEffect("preorder", sku, qty, since=self._since()))
        if (
            st.pending is None
            and not st.cancelled
            and (st.shipments or st.unroutable or st.backordered)
        ):
            # the decision may be what the dead worker did not flush: publish the current one
            # again (same attempt; consumers keep the latest message per order)
            self._publish_decision(self._decision_status(), {"republished": True}, new=[])

    def _ask_again(self, rnd: Round) -> None:
        """The round's asks still unanswered, sent again (an owner answers a shipment it holds
        without taking it twice)."""
        for plan in rnd.plans:
            s = Shipment.from_dict(plan)
            if s.shipment_id in rnd.awaiting:
                self.effects.append(self._reserve(s))
            for sku, qty in s.lines.items():
                rid = s.rid(sku)
                if rid in rnd.awaiting:  # a round from before 2026-11
                    self.effects.append(StockEffect("reserve", sku, s.location_id, qty, rid))

    # -- routing ----------------------------------------------------------------------------------
    def _decision_status(self) -> str:
        """What routed-orders says of the order now: routed while a shipment is placed."""
        st = self._require()
        if any(s.status in OPEN or s.status == "in_transit" for s in st.shipments.values()):
            return "routed"
        if st.backordered:
            return "backordered"
        return "unroutable" if st.unroutable else "routed"

    def _start_decision(
        self,
        lines: dict[str, int],
        *,
        counted: bool = True,
        overrides: dict[str, int] | None = None,
    ) -> None:
        """Route `lines` (after the round in progress, if any). `counted`: the decision counts
        against max_attempts (a re-route after a location let the order down does; routing
        again what a line cancellation left of a round does not)."""
        st = self._require()
        if st.pending is not None:
            for sku, qty in lines.items():
                st.queued[sku] = st.queued.get(sku, 0) + qty
            return
        st.attempt += 1
        if not counted:
            st.uncounted += 1
        if st.attempt - st.uncounted > self.ctx.policy.max_attempts:
            self._unroutable(
                lines, {"why": f"gave up after {self.ctx.policy.max_attempts} attempts"}
            )
            return
        self._plan_round(Round(lines=lines, plans=[], awaiting=[], overrides=overrides or {}))

    def _plan_round(self, rnd: Round) -> None:
        st = self._require()
        decision = decide(
            self._request(rnd.lines),
            _Overlay(self.ctx.stock, rnd.overrides),
            self.ctx.locations,
            self._loads(rnd.saturated),
            self._policy(),
            now=self.ctx.now,
        )
        if decision.status != "routed":
            waitable = decision.reasons.get("unroutable") in WAITABLE
            if waitable and self._rule().enabled and not self._ship_complete():
                # ship what the network holds now, the rest waits (split allowed)
                view = _Overlay(self.ctx.stock, rnd.overrides)
                now_part = placeable(
                    rnd.lines, {sku: sum(view.stock_of(sku).values()) for sku in rnd.lines}
                )
                if now_part and now_part != rnd.lines:
                    self._backorder(
                        {k: v for k, v in rnd.lines.items() if k not in now_part},
                        decision.reasons,
                    )
                    rnd.lines = now_part
                    self._plan_round(rnd)
                    return
            self._unroutable(rnd.lines, decision.reasons, waitable=waitable)
            return
        rnd.reasons = decision.reasons
        rnd.plans, rnd.awaiting, rnd.ok, rnd.failed = [], [], [], {}
        for planned in decision.shipments:
            s = self._new_shipment(planned)
            rnd.plans.append(s.to_dict())
            rnd.awaiting.append(s.shipment_id)
            self.effects.append(self._reserve(s))
        st.pending = rnd

    def _reserve(self, s: Shipment) -> ReserveEffect:
        due = datetime.fromisoformat(s.ship_by).timestamp() if s.ship_by else None
        return ReserveEffect(s.shipment_id, s.location_id, tuple(sorted(s.lines.items())), due)

    def _new_shipment(self, planned: Any) -> Shipment:
        st = self._require()
        sid = f"{st.order_id}-S{st.next_shipment}"
        st.next_shipment += 1
        dest = None
        if planned.mode == "transfer_to_store":
            dest = (st.order.get("delivery") or {}).get("pickup_location_id")
        p = planned.promise
        return Shipment(
            shipment_id=sid,
            location_id=planned.location_id,
            mode=planned.mode,
            lines=dict(planned.lines),
            destination_location_id=dest,
            attempt=st.attempt,
            ship_by=p.ship_by.isoformat() if p else None,
            promised_delivery=p.promised_delivery.isoformat()
            if p and p.promised_delivery
            else None,
            ready_for_pickup_by=(
                p.ready_for_pickup_by.isoformat() if p and p.ready_for_pickup_by else None
            ),
        )

    def _close_round(self) -> None:
        st = self._require()
        rnd = st.pending
        assert rnd is not None
        full = {p["location_id"] for p in rnd.plans} & set(rnd.saturated)
        if not rnd.failed and not full:
            st.pending = None
            self._confirm(rnd)
        else:
            self._release_round(rnd)
            if rnd.tries >= MAX_ROUNDS:
                st.pending = None
                self._unroutable(
                    rnd.lines,
                    {
                        "why": "stock or capacity taken by concurrent orders",
                        "unroutable": "contended",
                        "contended": sorted(rnd.failed),
                        "saturated": sorted(rnd.saturated),
                    },
                    waitable=True,
                )
            else:
                rnd.overrides.update(rnd.failed)
                rnd.tries += 1
                st.pending = None
                self._plan_round(rnd)
        if st.pending is None and st.queued:
            queued, st.queued = st.queued, {}
            self._start_decision(queued)

    def _confirm(self, rnd: Round) -> None:
        st = self._require()
        for plan in rnd.plans:
            s = Shipment.from_dict(plan)
            s.history["routed"] = self.ctx.now.isoformat()
            s.accept_by = self._acceptance_deadline(s.location_id)
            st.shipments[s.shipment_id] = s
            self.effects.append(Deadline(s.shipment_id, s.accept_by))  # its slot: since reserved
            if s.ship_by:
                due = datetime.fromisoformat(s.ship_by).timestamp()
                self.effects.append(ShipByCheck(s.shipment_id, due))
        self._publish_decision("routed", rnd.reasons, new=[p["shipment_id"] for p in rnd.plans])
        self._order_event(
            "routed",
            detail={"attempt": st.attempt, "shipments": [p["shipment_id"] for p in rnd.plans]},
        )
        came = sorted(sku for sku in rnd.lines if sku in st.retrying)
        if came:
            st.retrying = [sku for sku in st.retrying if sku not in came]
            self._leave_backorders({sku for sku in came if sku not in st.backordered}, "routed")
            if not st.backordered and not st.retrying:
                self.effects.append(Deadline(self._expiry_id(), None))
            self._order_event(
                "backorder_routed",
                detail={
                    "lines": [ln.model_dump() for ln in _lines({k: rnd.lines[k] for k in came})],
                    "shipments": [p["shipment_id"] for p in rnd.plans],
                    "waited_s": round(self.ctx.now.timestamp() - self._since(), 3),
                },
            )

    def _acceptance_deadline(self, location_id: str) -> float:
        """The acceptance time-out counts the location's preparation hours only: routed at
        22:00 to a store preparing from 09:00, a 900 s time-out falls due at 09:15, not 22:15."""
        cal = calendar_of(self.ctx.locations.get(location_id))
        return preparation_deadline(cal, self.ctx.now, self.ctx.acceptance_timeout_s).timestamp()

    def _unroutable(
        self, lines: dict[str, int], reasons: dict[str, Any], *, waitable: bool = False
    ) -> None:
        """The lines cannot be placed: they wait as backorders when the policy says so and the
        reason is "not now" (`waitable`), else they are unroutable."""
        st = self._require()
        if waitable and self._rule().enabled:
            self._backorder(lines, reasons)
            return
        left = [sku for sku in lines if sku in st.retrying]
        if left:
            st.retrying = [sku for sku in st.retrying if sku not in left]
            self._leave_backorders(set(left), "unroutable")
        for sku, qty in lines.items():
            st.unroutable[sku] = st.unroutable.get(sku, 0) + qty
        self._publish_decision("unroutable", reasons, new=[])
        self._order_event(
            "unroutable",
            detail={"lines": [ln.model_dump() for ln in _lines(lines)], "reasons": reasons},
        )

    def _publish_decision(self, status: str, reasons: dict[str, Any], new: list[str]) -> None:
        st = self._require()
        shipments = [
            RoutedShipment(
                shipment_id=s.shipment_id,
                location_id=s.location_id,
                mode=s.mode,  # type: ignore[arg-type]
                lines=_lines(s.lines),
                ship_by=_at(s.ship_by),
                promised_delivery=date.fromisoformat(s.promised_delivery)
                if s.promised_delivery
                else None,
                ready_for_pickup_by=_at(s.ready_for_pickup_by),
                accept_by=(
                    datetime.fromtimestamp(s.accept_by, UTC)
                    if s.accept_by is not None and s.status == "routed"
                    else None
                ),
            )
            for s in st.shipments.values()
            if s.status in OPEN or s.status in ("in_transit",)
        ]
        promised, previous = self._promised_date(), st.promised_date
        slipped = promised is not None and previous is not None and promised.isoformat() > previous
        if promised is not None:
            st.promised_date = promised.isoformat()
        self.effects.append(
            RoutedOrder(
                order_id=st.order_id,
                attempt=st.attempt,
                status=status,  # type: ignore[arg-type]
                decided_at=self.ctx.now,
                shipments=shipments,
                reasons={**reasons, "new_shipments": new, "excluded": list(st.excluded)},
                unroutable_lines=_lines(st.unroutable),
                promised_date=promised,
                promise_slipped=slipped,
                previous_promised_date=date.fromisoformat(previous)
                if slipped and previous
                else None,
                backordered_lines=self._waiting_lines(),
            )
        )

    def _waiting_lines(self) -> list[BackorderedLine]:
        """routed-orders.backordered_lines: a preorder's with its expected and promised dates."""
        st = self._require()
        return [
            BackorderedLine(
                sku=sku,
                qty=qty,
                expected_date=_at(st.preorders.get(sku)),
                promised_date=(
                    date.fromisoformat(st.preorder_promised[sku])
                    if sku in st.preorder_promised
                    else None
                ),
            )
            for sku, qty in sorted(st.backordered.items())
        ]

    def _promised_date(self) -> date | None:
        """The latest promised date of the order's live shipments (delivery or pickup date)
        and of its preorder lines still waiting (from the date their supply is due)."""
        st = self._require()
        dates = [
            date.fromisoformat(d)
            for sku, d in st.preorder_promised.items()
            if sku in st.backordered or sku in st.retrying
        ]
        for s in st.active():
            if s.ready_for_pickup_by:
                dates.append(datetime.fromisoformat(s.ready_for_pickup_by).date())
            elif s.promised_delivery:
                dates.append(date.fromisoformat(s.promised_delivery))
        return max(dates, default=None)

    # -- backorders (domain/backorders.py) -----------------------------------------------------
    def backorder_retry(self, msg: BackorderRetry) -> None:
        """The SKU's queue gives this order its turn: route its waiting units of the SKU (every
        waiting line for ship_complete). Stale turns (nothing waiting for the SKU) are answered
        with a leave; a turn for lines being routed already is answered by that decision."""
        st = self._require()
        if msg.sku in st.asks:
            return  # asked as a preorder, not answered yet: the queue hands the turn again
        if st.cancelled or msg.sku not in st.backordered:
            if msg.sku not in st.retrying:
                self.effects.append(BackorderEffect("leave", msg.sku, reason="not waiting"))
            elif st.pending is not None:
                # the turn handed again (agents/backorders.py RESEND_S): the round under way
                # still waits for an owner's answer, whose ask or answer a dying worker lost;
                # ask again (an owner answers a shipment it holds without taking it twice)
                self._ask_again(st.pending)
            return
        skus = sorted(st.backordered) if self._ship_complete() else [msg.sku]
        lines = {sku: st.backordered.pop(sku) for sku in skus}
        st.retrying.extend(sku for sku in skus if sku not in st.retrying)
        view = self.ctx.stock.stock_of(msg.sku)
        hints = {  # what the owners signalled, where the view has not caught up yet
            f"{msg.sku}@{loc}": n for loc, n in msg.available.items() if n > view.get(loc, 0)
        }
        self._start_decision(lines, counted=False, overrides=hints)

    def preorder_accepted(self, msg: PreorderAccepted) -> None:
        """The SKU's queue accepted the waiting units on supply expected at `expected_date`
        (at `location_id`): the line is a preorder, promised from that date (the normal
        preparation and transit rules from there), routed when the receipt arrives. An
        answer to the order's own preorder ask counts once every ask is granted."""
        st = self._require()
        if msg.sku in st.asks:
            if msg.qty > st.asks[msg.sku]:  # granted as asked, cancelled in part since
                self.effects.append(BackorderEffect("shrink", msg.sku, st.asks[msg.sku]))
            if msg.sku not in st.preorders:
                self._note_preorder(msg)
                if all(sku in st.preorders for sku in st.asks):
                    self._preorders_granted()
            return
        waiting = st.backordered.get(msg.sku, 0) or (msg.sku in st.retrying)
        if not waiting and msg.sku in st.cancelled_lines:
            # a grant of an ask its line cancellation withdrew: given back (again: a leave
            # follows the ask on the queue, this one is for a grant re-sent after a crash)
            self.effects.append(BackorderEffect("leave", msg.sku, reason="cancelled"))
            return
        if st.cancelled or st.refused or not waiting or msg.sku in st.preorders:
            return  # gone meanwhile, or told before (a repeated answer)
        self._note_preorder(msg)
        self._order_event("preorder_accepted", detail=self._preorder_detail(msg.sku, msg.qty))
        self._publish_decision(self._decision_status(), {"preorder_accepted": msg.sku}, new=[])

    def preorder_refused(self, msg: PreorderRefused) -> None:
        """A SKU's queue refused the order's preorder (more than expected and not yet
        claimed): the order is refused whole. The other SKUs' grants are given back, nothing
        was reserved nor routed; the order_placed goes to dead-letters with the reason."""
        st = self._require()
        if msg.sku not in st.asks or st.refused:
            return  # answered before (a repeated answer), or cancelled meanwhile
        if msg.asked > st.asks[msg.sku]:
            # the answer to an ask a line cancellation shrank since: ask for what is left
            self.effects.append(
                BackorderEffect("preorder", msg.sku, st.asks[msg.sku], since=self._since())
            )
            return
        reason = (
            f"preorder of {msg.asked} x {msg.sku} beyond expected supply: "
            f"{msg.left} expected and not yet claimed"
        )
        self._refuse(msg.sku, msg.asked, msg.left, reason)

    def _refuse(self, sku: str, asked: int, left: int, reason: str) -> None:
        st = self._require()
        st.refused = reason
        st.refusal = {"sku": sku, "asked": asked, "left": left, "skus": sorted(st.asks)}
        st.asks, st.preorders, st.preorder_promised = {}, {}, {}
        self._tell_refusal()

    def preorder_dropped(self, msg: PreorderDropped) -> None:
        """The supply the SKU's preorder was accepted on will not cover it: a short receipt
        ended it, or it is late (not in by the end of its expected day plus the policy's
        grace). The line waits on as a plain backorder, in its place, and stops claiming that
        supply's date (`backordered_lines[].expected_date` and `.promised_date` null, the
        decision's `promised_date` without it) until a later announced receipt covers it (a
        new acceptance). Told on order-events (`preorder_dropped`, with the reason and the
        dates withdrawn) and routed-orders. Its max_wait_days still count from the date the
        supply was due. An order still awaiting other preorder answers has told nobody of
        the grant: its preorder is refused whole, as if the queue had refused it."""
        st = self._require()
        if st.cancelled or st.refused or msg.sku not in st.preorders:
            return  # gone, or told before (a drop re-sent after a crash)
        if msg.sku in st.asks:
            why = "a short receipt left" if msg.reason == "short_receipt" else "late supply left"
            reason = (
                f"preorder of {st.asks[msg.sku]} x {msg.sku} beyond expected supply: {why} "
                f"{msg.left} expected and not yet claimed"
            )
            self._refuse(msg.sku, st.asks[msg.sku], msg.left, reason)
            return
        expected = st.preorders.pop(msg.sku)
        promised = st.preorder_promised.pop(msg.sku, None)
        st.dropped[msg.sku] = expected
        if not (st.backordered.get(msg.sku) or msg.sku in st.retrying):
            return  # routed or given up meanwhile: nothing promised on it any more
        self._order_event(
            "preorder_dropped",
            detail={
                "lines": [{"sku": msg.sku, "qty": st.backordered.get(msg.sku, msg.qty)}],
                "reason": msg.reason,
                "expected_date": expected,
                "promised_date": promised,
            },
        )
        self._publish_decision(self._decision_status(), {"preorder_dropped": msg.sku}, new=[])

    def drop_replayed(self, msg: PreorderDropped) -> None:
        """A drop read again after the order's worker died: the refusal it caused is told
        again, else what the state implies is re-emitted (Machine.resync)."""
        st = self.state
        if st is not None and st.refusal is not None and st.refusal["sku"] == msg.sku:
            self._tell_refusal()
        else:
            self.resync()

    def refusal_replayed(self, msg: PreorderRefused) -> None:
        """The refusal that refused the order, read again after its worker died: what it
        produced is produced again (the dead worker may not have flushed it; the order event
        has the same event_id, the leaves are no-ops once applied)."""
        st = self.state
        if st is not None and st.refusal is not None and st.refusal["sku"] == msg.sku:
            self._tell_refusal()

    def _tell_refusal(self) -> None:
        st = self._require()
        r = st.refusal or {}
        for sku in r.get("skus", []):  # after the asks on each queue: a grant made is undone
            self.effects.append(BackorderEffect("leave", sku, reason="preorder_refused"))
        source = st.placed_from
        self.effects.append(Refusal(st.refused or "", tuple(source) if source else None))  # type: ignore[arg-type]
        self._order_event(
            "preorder_refused",
            detail={
                "sku": r.get("sku"),
                "asked": r.get("asked"),
                "left": r.get("left"),
                "reason": st.refused,
            },
        )

    def _note_preorder(self, msg: PreorderAccepted) -> None:
        st = self._require()
        due = datetime.fromtimestamp(msg.expected_date, self.ctx.now.tzinfo)
        st.preorders[msg.sku] = due.isoformat()
        st.preorder_promised[msg.sku] = self._preorder_date(due, msg.location_id).isoformat()

    def _preorder_detail(self, sku: str, qty: int) -> dict[str, Any]:
        st = self._require()
        return {
            "lines": [{"sku": sku, "qty": qty}],
            "expected_date": st.preorders[sku],
            "promised_date": st.preorder_promised.get(sku),
        }

    def _preorders_granted(self) -> None:
        """Every preorder line is granted (the queues hold them with their claims): they
        wait for their receipts, and the order's other lines are routed as usual (for
        ship_complete they wait too: one shipment)."""
        st = self._require()
        asks, st.asks, st.placed_from = st.asks, {}, None
        rule = self._rule()
        _add(st.backordered, asks)
        self.effects.append(Deadline(self._expiry_id(), self._since() + rule.max_wait_days * DAY_S))
        self._order_event(
            "backordered",
            detail={
                "lines": [ln.model_dump() for ln in _lines(asks)],
                "reasons": {"preorder": sorted(asks)},
                "max_wait_days": rule.max_wait_days,
            },
        )
        for sku in sorted(asks):
            self._order_event("preorder_accepted", detail=self._preorder_detail(sku, asks[sku]))
        self._publish_decision("backordered", {"preorder": sorted(asks)}, new=[])
        rest = {sku: qty for sku, qty in self._remaining().items() if sku not in asks}
        if rest and self._ship_complete():
            self._backorder(rest, {"unroutable": "ship_complete_with_preorder"})
        elif rest:
            self._route_placed(rest)

    def _preorder_date(self, due: datetime, location_id: str | None) -> date:
        """The date promised for a preorder line: its supply lands at `location_id` at `due`,
        then ships from there by the normal preparation, cut-off and transit rules (an empty
        queue ahead: the load that day is not known); the due date itself when the location
        is unknown or never prepares."""
        o = self._require().order
        loc = self.ctx.locations.get(location_id) if location_id else None
        if loc is None:
            return due.date()
        delivery = o.get("delivery") or {}
        pickup = self.ctx.locations.get(delivery.get("pickup_location_id") or "")
        if delivery.get("mode") == "click_collect" and pickup is not None:
            mode = CLICK_COLLECT if pickup.location_id == loc.location_id else TRANSFER
            lat, lon = pickup.lat, pickup.lon
        else:
            mode, pickup = MODE_BY_KIND.get(loc.kind, "ship_from_store"), None
            lat, lon = o["customer"]["lat"], o["customer"]["lon"]
        try:
            promise = preorder_promise(
                loc,
                arrives=due,
                service=delivery.get("service", "standard"),
                mode=mode,
                distance_km=great_circle_km(lat, lon, loc.lat, loc.lon),
                carriers=self.ctx.policy.carriers,
                pickup=pickup,
            )
        except NeverPrepares:
            return due.date()
        return promise.customer_date

    def _backorder(self, lines: dict[str, int], reasons: dict[str, Any]) -> None:
        """The lines wait for stock (or are unroutable when they already waited too long)."""
        st = self._require()
        rule = self._rule()
        if self.ctx.now.timestamp() >= self._since() + rule.max_wait_days * DAY_S:
            self._unroutable(lines, _expired(rule))
            return
        new = {sku: qty for sku, qty in lines.items() if sku not in st.retrying}
        st.retrying = [sku for sku in st.retrying if sku not in lines]
        _add(st.backordered, lines)
        for sku in sorted(lines):
            self.effects.append(self._wait(sku))
        self.effects.append(Deadline(self._expiry_id(), self._since() + rule.max_wait_days * DAY_S))
        if new:
            self._publish_decision(self._decision_status(), reasons, new=[])
            self._order_event(
                "backordered",
                detail={
                    "lines": [ln.model_dump() for ln in _lines(new)],
                    "reasons": reasons,
                    "max_wait_days": rule.max_wait_days,
                },
            )

    def _expire_backorders(self) -> None:
        """The expiry check (scheduled by wall clock, decided by network time): each waiting
        line goes past its own limit (`_expires_at`); the others keep waiting."""
        st = self._require()
        rule = self._rule()
        if not st.backordered or st.cancelled:
            self.effects.append(Deadline(self._expiry_id(), None))
            return
        now = self.ctx.now.timestamp()
        gone = {sku: q for sku, q in st.backordered.items() if self._expires_at(sku) <= now}
        left = [self._expires_at(sku) for sku in st.backordered if sku not in gone]
        if left:
            self.effects.append(Deadline(self._expiry_id(), min(left)))  # check again then
        elif not st.retrying:
            self.effects.append(Deadline(self._expiry_id(), None))
        if not gone:
            return
        for sku in gone:
            del st.backordered[sku]
        self._leave_backorders(set(gone), "expired")
        self._unroutable(gone, _expired(rule))

    def _expires_at(self, sku: str) -> float:
        """When a waiting line has waited max_wait_days: from the order (network time), or for a
        preorder from the date its supply is due (a preorder on supply due in three weeks is
        not given up after two), even when a short receipt dropped it since."""
        start = self._since()
        st = self._require()
        expected = st.preorders.get(sku) or st.dropped.get(sku)
        if expected is not None:
            start = max(start, datetime.fromisoformat(expected).timestamp())
        return start + self._rule().max_wait_days * DAY_S

    def _leave_backorders(self, skus: set[str], reason: str) -> None:
        st = self._require()
        for sku in sorted(skus):
            st.backordered.pop(sku, None)
            self.effects.append(BackorderEffect("leave", sku, reason=reason))
        st.retrying = [sku for sku in st.retrying if sku not in skus]

    def _wait(self, sku: str) -> BackorderEffect:
        qty = self._require().backordered[sku]
        return BackorderEffect("wait", sku, qty=qty, since=self._since())

    def _since(self) -> float:
        """When the order's lines started waiting: its occurred_at (network time)."""
        return datetime.fromisoformat(self._require().order["occurred_at"]).timestamp()

    def _expiry_id(self) -> str:
        """The order's backorder expiry check, in the deadlines table beside shipments'."""
        return f"{self._require().order_id}#backorder"

    def _rule(self) -> Rule:
        return self.ctx.policy.backorder.rule(self._require().order.get("channel") or "web")

    def _ship_complete(self) -> bool:
        delivery = self._require().order.get("delivery") or {}
        return delivery.get("split") == "ship_complete" and delivery.get("mode") != "click_collect"

    def _policy(self) -> RoutingPolicy:
        """The policy for this order: ship_complete allows one shipment only."""
        if self._ship_complete():
            return replace(self.ctx.policy, max_shipments=1)
        return self.ctx.policy

    def _request(self, lines: dict[str, int]) -> RoutingRequest:
        st = self._require()
        o = st.order
        delivery = o.get("delivery") or {}
        return RoutingRequest(
            order_id=st.order_id,
            customer_lat=o["customer"]["lat"],
            customer_lon=o["customer"]["lon"],
            delivery_mode=delivery.get("mode", "home"),
            pickup_location_id=delivery.get("pickup_location_id"),
            service=delivery.get("service", "standard"),
            lines=tuple(sorted(lines.items())),
            excluded=frozenset(st.excluded),
        )

    def _reroute(
        self, s: Shipment, status: str, *, reason: str, short: dict[str, int] | None
    ) -> None:
        st = self._require()
        for sku, qty in (short or {}).items():
            if sku in s.lines:
                self.effects.append(
                    StockEffect("short", sku, s.location_id, min(qty, s.lines[sku]), s.rid(sku))
                )
        self._release_shipment(s)
        s.status = status
        s.history[status] = self.ctx.now.isoformat()
        if s.location_id not in st.excluded:
            st.excluded.append(s.location_id)
        self._order_event(
            "shipment_rejected",
            shipment=s,
            detail={"reason": reason, "short": short or {}},
            rerouting=not st.cancelled,
        )
        if not st.cancelled:
            self._start_decision(dict(s.lines))

    # -- workflow ---------------------------------------------------------------------------------
    def _next_steps(self, s: Shipment) -> set[str]:
        if s.status == "in_transit" or (
            s.destination_location_id
            and s.status in ("ready_for_pickup",)
            and "in_transit" in s.history
        ):
            return NEXT_IN_TRANSIT.get(s.status, set())
        table = NEXT_COLLECT if s.mode == "click_collect" else NEXT_HOME
        return table.get(s.status, set())

    def _step(self, s: Shipment, ev: FulfilmentEvent) -> None:
        st = self._require()
        prev = s.status
        prev_at = s.history.get(prev)
        seconds = 0.0
        if prev_at:
            seconds = max(0.0, (self.ctx.now - datetime.fromisoformat(prev_at)).total_seconds())
        if ev.type == "picked" and ev.lines is not None:
            picked = {ln.sku: ln.qty for ln in ev.lines}
            missing = {
                sku: qty - picked.get(sku, 0)
                for sku, qty in s.lines.items()
                if picked.get(sku, 0) < qty
            }
            if any(picked.get(sku, 0) > qty for sku, qty in s.lines.items()) or (
                set(picked) - set(s.lines)
            ):
                raise LifecycleError(f"picked more than shipment {s.shipment_id} holds")
            if missing and self._ship_complete():
                self._short_pick_whole(s, missing)
                return
            if missing:
                for sku, qty in missing.items():
                    self.effects.append(StockEffect("short", sku, s.location_id, qty, s.rid(sku)))
                    s.lines[sku] -= qty
                    if s.lines[sku] == 0:
                        del s.lines[sku]
                if not s.lines:
                    s.status = "rejected"
                    s.history["rejected"] = self.ctx.now.isoformat()
                    self.effects.append(LoadEffect("close", s.location_id, s.shipment_id))
                    self.effects.append(Deadline(s.shipment_id, None))
                self._order_event(
                    "short_pick",
                    shipment=s,
                    detail={"missing": [ln.model_dump() for ln in _lines(missing)]},
                    rerouting=True,
                )
                self._start_decision(missing)
                if not s.lines:
                    return
        if ev.type == "accepted":
            self.effects.append(Deadline(s.shipment_id, None))
        s.status = ev.type
        s.history[ev.type] = self.ctx.now.isoformat()
        self.effects.append(
            LoadEffect(
                "step",
                ev.location_id,
                s.shipment_id,
                step=f"{prev}->{ev.type}",
                seconds=seconds,
            )
        )
        if ev.type == "shipped":
            for sku in s.lines:
                self.effects.append(
                    StockEffect("consume", sku, s.location_id, reservation_id=s.rid(sku))
                )
            self.effects.append(LoadEffect("close", s.location_id, s.shipment_id))
            if s.mode == "transfer_to_store" and s.destination_location_id:
                s.status = "in_transit"
                s.history["in_transit"] = self.ctx.now.isoformat()
                self.effects.append(
                    LoadEffect("open", s.destination_location_id, s.shipment_id, units=s.units)
                )
            else:
                for sku, qty in s.lines.items():
                    st.delivered[sku] = st.delivered.get(sku, 0) + qty
        elif ev.type == "collected":
            if s.mode == "click_collect":
                for sku in s.lines:
                    self.effects.append(
                        StockEffect("consume", sku, s.location_id, reservation_id=s.rid(sku))
                    )
            for sku, qty in s.lines.items():
                st.delivered[sku] = st.delivered.get(sku, 0) + qty
            self.effects.append(LoadEffect("close", ev.location_id, s.shipment_id))
        self._order_event(ev.type, shipment=s, location_id=ev.location_id)

    def _short_pick_whole(self, s: Shipment, missing: dict[str, int]) -> None:
        """A short pick of a ship_complete order: the order never splits, so the shipment is
        given back whole (the store's on_hand is corrected for the missing units, the picked
        ones return to its stock, its slot is released) and every line of it is routed again
        as one shipment, or waits whole as a backorder until one location can serve
        everything, within max_wait_days (the rules of placement). The location is not
        excluded: it may serve the whole order again once its stock allows."""
        st = self._require()
        for sku, qty in missing.items():
            self.effects.append(StockEffect("short", sku, s.location_id, qty, s.rid(sku)))
        self._release_shipment(s)
        s.status = "rejected"
        s.history["rejected"] = self.ctx.now.isoformat()
        self._order_event(
            "short_pick",
            shipment=s,
            detail={
                "missing": [ln.model_dump() for ln in _lines(missing)],
                "ship_complete": True,
                "given_back": [ln.model_dump() for ln in _lines(s.lines)],
            },
            rerouting=not st.cancelled,
        )
        self._start_decision(dict(s.lines))

    # -- helpers ----------------------------------------------------------------------------------
    def _require(self) -> OrderState:
        if self.state is None:
            raise LifecycleError("unknown order: never placed")
        return self.state

    def _loads(self, saturated: list[str]) -> Mapping[str, LoadView]:
        """The load view, with the owners that refused a slot in this decision counted full."""
        if not saturated:
            return self.ctx.loads
        loads = dict(self.ctx.loads)
        for loc in saturated:
            cur = loads.get(loc, LoadView())
            known = self.ctx.locations.get(loc)
            full = max(cur.open_orders, known.max_backlog if known else 0)
            loads[loc] = LoadView(full, cur.open_units)
        return loads

    def _shipment_is_live(self, sid: str, location_id: str) -> bool:
        """Whether the order holds this shipment at this location (an answer from another
        location for the same shipment id is a reservation nobody holds)."""
        st = self._require()
        if st.pending is not None and sid in st.pending.ok:
            # a repeated answer for the round in progress
            return self._planned_at(st.pending, sid) == location_id
        s = st.shipments.get(sid)
        return s is not None and s.status in OPEN and s.location_id == location_id

    @staticmethod
    def _planned_at(rnd: Round, sid: str) -> str | None:
        return next((p["location_id"] for p in rnd.plans if p["shipment_id"] == sid), None)

    def _release_round(self, rnd: Round) -> None:
        """Give back what a round's owners granted (before its decision was abandoned)."""
        for key in rnd.ok:
            if "/" in key:  # a round from before 2026-11: per-line reservation ids
                self._release_rid(key, rnd)
                continue
            plan = next(p for p in rnd.plans if p["shipment_id"] == key)
            self.effects.append(
                ReleaseEffect(key, plan["location_id"], tuple(sorted(plan["lines"])))
            )

    def _rid_is_live(self, rid: str) -> bool:
        st = self._require()
        if st.pending is not None and (rid in st.pending.ok or rid in st.pending.awaiting):
            return True  # a repeated answer for the round in progress
        sid, _, sku = rid.rpartition("/")
        s = st.shipments.get(sid)
        return s is not None and s.status in OPEN and sku in s.lines

    def _release_rid(self, rid: str, rnd: Round) -> None:
        sid, _, sku = rid.rpartition("/")
        for plan in rnd.plans:
            if plan["shipment_id"] == sid:
                self.effects.append(
                    StockEffect("release", sku, plan["location_id"], reservation_id=rid)
                )

    def _release_shipment(self, s: Shipment) -> None:
        self.effects.append(ReleaseEffect(s.shipment_id, s.location_id, tuple(sorted(s.lines))))
        if s.status in OPEN:
            self.effects.append(Deadline(s.shipment_id, None))

    def _order_event(
        self,
        change: str,
        *,
        shipment: Shipment | None = None,
        location_id: str | None = None,
        detail: dict[str, Any] | None = None,
        rerouting: bool = False,
    ) -> None:
        st = self._require()
        st.status = st.derive_status(rerouting=rerouting)
        self._n_events += 1
        self.effects.append(
            OrderEvent(
                event_id=f"{self.ctx.event_prefix}/{self._n_events}",
                order_id=st.order_id,
                occurred_at=self.ctx.now,
                change=change,
                order_status=st.status,  # type: ignore[arg-type]
                shipment_id=shipment.shipment_id if shipment else None,
                location_id=location_id or (shipment.location_id if shipment else None),
                shipments=[
                    ShipmentState(
                        shipment_id=s.shipment_id,
                        location_id=s.location_id,
                        mode=s.mode,  # type: ignore[arg-type]
                        status=s.status,
                        lines=_lines(s.lines),
                        destination_location_id=s.destination_location_id,
                        ship_by=_at(s.ship_by),
                        late=s.late,
                    )
                    for s in st.shipments.values()
                ],
                detail=detail or {},
            )
        )


def _at(iso: str | None) -> datetime | None:
    return datetime.fromisoformat(iso) if iso else None


def _expired(rule: Rule) -> dict[str, Any]:
    return {
        "unroutable": "backorder_expired",
        "why": f"waited longer than max_wait_days ({rule.max_wait_days:g}) for stock",
    }


def _gone(s: Shipment) -> bool:
    """The shipment's units left their location (shipped, collected, or on the way to the
    pickup store and then waiting there)."""
    return s.status in ("shipped", "collected", "in_transit") or "in_transit" in s.history


def _add(into: dict[str, int], more: Mapping[str, int]) -> None:
    for sku, qty in more.items():
        into[sku] = into.get(sku, 0) + qty


def _subtract(into: dict[str, int], less: Mapping[str, int]) -> None:
    for sku, qty in less.items():
        left = into.get(sku, 0) - qty
        if left > 0:
            into[sku] = left
        else:
            into.pop(sku, None)


def _lines(lines: Mapping[str, int]) -> list[ShipmentLine]:
    return [ShipmentLine(sku=sku, qty=qty) for sku, qty in sorted(lines.items())]
