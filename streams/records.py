"""Typed schemas of every message on Stockroute's topics.

The models are the public wire contract: `schemas/*.json` is generated from them
(`stockroute schemas`), and every input message is validated against them before anything
touches state. Validation is strict (no "5" for 5) because a silently coerced quantity is a
wrong stock figure; unknown extra fields are ignored so producers can extend messages
compatibly. This module imports no Kafka or Faust code: the domain modules use it too.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

MAX_QTY = 1_000_000
MAX_LINES = 500

Id = Annotated[str, Field(min_length=1, max_length=128)]
Qty = Annotated[int, Field(gt=0, le=MAX_QTY)]
CountQty = Annotated[int, Field(ge=0, le=MAX_QTY)]
Latitude = Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False)]
Longitude = Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False)]
Money = Annotated[float, Field(ge=0, le=1e9, allow_inf_nan=False)]

LocationKind = Literal["warehouse", "store", "supplier", "marketplace"]
ShipmentMode = Literal[
    "ship_from_store", "ship_from_warehouse", "drop_ship", "click_collect", "transfer_to_store"
]
FulfilmentType = Literal[
    "accepted",
    "rejected",
    "picked",
    "packed",
    "label_printed",
    "ready_for_pickup",
    "shipped",
    "collected",
]
OrderStatus = Literal[
    "routed",
    "rerouting",
    "in_preparation",
    "partially_shipped",
    "shipped",
    "ready_for_pickup",
    "collected",
    "cancelled",
    "partially_returned",
    "returned",
    "unroutable",
    "backordered",
]


class Record(BaseModel):
    """Base of input records: strict types, extra fields tolerated (compatible extension)."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)


class Output(BaseModel):
    """Base of output records: what we publish carries exactly the declared fields."""

    model_config = ConfigDict(extra="forbid")


class Event(Record):
    event_id: Id
    occurred_at: AwareDatetime


class Line(Record):
    sku: Id
    qty: Qty


class CountLine(Record):
    sku: Id
    qty: CountQty


# ---- inputs ----------------------------------------------------------------------------------

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
HoursInterval = Annotated[
    str,
    Field(
        pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]-(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$",
        description="local wall time 'HH:MM-HH:MM' within one day; '24:00' ends at midnight",
    ),
]
WeekHours = dict[Weekday, Annotated[list[HoursInterval], Field(max_length=24)]]


def interval_minutes(text: str) -> tuple[int, int]:
    """'09:30-19:00' -> (570, 1140): minutes of the day ('24:00' is 1440)."""
    a, b = text.split("-")
    return int(a[:2]) * 60 + int(a[3:]), int(b[:2]) * 60 + int(b[3:])


def _check_week(what: str, week: WeekHours) -> None:
    for day, intervals in week.items():
        spans = sorted((interval_minutes(iv), iv) for iv in intervals)
        for (start, end), text in spans:
            if end <= start:
                raise ValueError(f"{what}.{day}: {text}: end is not after start")
        for ((_, end), before), ((start, _), after) in zip(spans, spans[1:], strict=False):
            if start < end:
                raise ValueError(f"{what}.{day}: intervals {before} and {after} overlap")


class LocationCalendar(Record):
    """When a location is open and when it prepares web orders (domain/calendar.py), in local
    wall time of `tz`. A weekday missing from `opening` is closed; `preparation` missing means
    "while open"; a closed date closes the whole local day. Without a calendar a location is
    open and preparing around the clock."""

    tz: Annotated[str, Field(min_length=1, max_length=64, description="IANA time zone")]
    opening: WeekHours = {}
    preparation: WeekHours | None = None
    closed_dates: Annotated[list[Annotated[date, Field(strict=False)]], Field(max_length=3660)] = []

    @model_validator(mode="after")
    def _valid_hours(self) -> LocationCalendar:
        try:
            ZoneInfo(self.tz)
        except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: "Europe" is a folder
            raise ValueError(f"unknown time zone {self.tz!r}") from None
        _check_week("opening", self.opening)
        _check_week("preparation", self.preparation or {})
        return self


class Location(Record):
    location_id: Id
    kind: LocationKind
    name: Annotated[str, Field(max_length=256)]
    lat: Latitude
    lon: Longitude
    ship_from_store: bool = False
    click_collect: bool = False
    capacity_per_hour: Annotated[int, Field(ge=0, le=MAX_QTY)] = 0
    max_backlog: Annotated[int, Field(ge=0, le=MAX_QTY)] = 0
    safety_stock: Annotated[int, Field(ge=0, le=MAX_QTY)] = 0
    active: bool = True
    # web orders paused until then (walk-in customers first); ISO text accepted from JSON lines
    paused_until: Annotated[AwareDatetime, Field(strict=False)] | None = None
    # opening and preparation hours (capacity_per_hour counts preparation hours); None: 24/7
    calendar: LocationCalendar | None = None


class PosSale(Event):
    location_id: Id
    lines: Annotated[list[Line], Field(min_length=1, max_length=MAX_LINES)]


class SupplierFeed(Event):
    """receipt adds to on_hand; stock_count sets it (qty 0 allowed only there); an
    expected_receipt announces supply due at `expected_date` (no stock change: orders for it are
    accepted as preorders, domain/backorders.py)."""

    type: Literal["receipt", "stock_count", "expected_receipt"]
    location_id: Id
    lines: Annotated[list[CountLine], Field(min_length=1, max_length=MAX_LINES)]
    expected_date: Annotated[AwareDatetime, Field(strict=False)] | None = None

    @model_validator(mode="after")
    def _receipts_are_positive(self) -> SupplierFeed:
        if self.type in ("receipt", "expected_receipt"):
            for i, line in enumerate(self.lines):
                if line.qty <= 0:
                    raise ValueError(f"lines.{i}.qty: a {self.type} quantity must be > 0")
        if self.type == "expected_receipt":
            if self.expected_date is None:
                raise ValueError("an expected_receipt needs its expected_date")
            if self.expected_date < self.occurred_at:
                raise ValueError(
                    f"expected_date {self.expected_date.isoformat()} is in the past "
                    f"(before occurred_at {self.occurred_at.isoformat()})"
                )
        return self


class Customer(Record):
    lat: Latitude
    lon: Longitude
    postcode: Annotated[str, Field(max_length=32)] | None = None
    name: Annotated[str, Field(max_length=256)] | None = None
    address_lines: (
        Annotated[list[Annotated[str, Field(max_length=256)]], Field(max_length=8)] | None
    ) = None


class Delivery(Record):
    mode: Literal["home", "click_collect"]
    pickup_location_id: Id | None = None
    service: Literal["standard", "express"] = "standard"
    # allowed: ship what is available first (splits allowed); ship_complete: one shipment, or
    # wait as a backorder until one location can serve everything (home delivery only)
    split: Literal["allowed", "ship_complete"] = "allowed"

    @model_validator(mode="after")
    def _pickup_needs_a_store(self) -> Delivery:
        if self.mode == "click_collect" and not self.pickup_location_id:
            raise ValueError("delivery.pickup_location_id is required for click_collect")
        return self


class OrderLine(Record):
    """A line of an order_placed (unit_price required there), or of an order_cancelled that
    cancels only these quantities (unit_price not needed). `preorder` (order_placed): the
    customer orders units announced by an expected_receipt; the SKU's queue grants them on the
    supply expected and not yet claimed, or the whole order is refused (domain/backorders.py)."""

    sku: Id
    qty: Qty
    unit_price: Money | None = None
    preorder: bool = False


class Payment(Record):
    method: Annotated[str, Field(min_length=1, max_length=64)]
    reference: Annotated[str, Field(min_length=1, max_length=256)]


class WebOrder(Event):
    """order_placed carries the whole order; order_cancelled needs only the order_id."""

    type: Literal["order_placed", "order_cancelled"]
    order_id: Id
    channel: Literal["web", "app", "store"] = "web"
    customer: Customer | None = None
    delivery: Delivery | None = None
    lines: Annotated[list[OrderLine], Field(max_length=MAX_LINES)] = []
    currency: Annotated[str, Field(min_length=3, max_length=3)] | None = None
    payment: Payment | None = None

    @model_validator(mode="after")
    def _placed_orders_are_complete(self) -> WebOrder:
        if self.type == "order_placed":
            missing = [
                name
                for name in ("customer", "delivery", "currency", "payment")
                if getattr(self, name) is None
            ]
            if not self.lines:
                missing.append("lines")
            missing.extend(
                f"lines.{i}.unit_price" for i, ln in enumerate(self.lines) if ln.unit_price is None
            )
            if missing:
                raise ValueError(f"order_placed lacks {', '.join(missing)}")
            pre = {ln.sku for ln in self.lines if ln.preorder}
            mixed = sorted(ln.sku for ln in self.lines if not ln.preorder and ln.sku in pre)
            if mixed:
                raise ValueError(f"lines: {mixed[0]} is both a preorder line and a plain one")
        return self


class FulfilmentEvent(Event):
    order_id: Id
    shipment_id: Id
    location_id: Id
    type: FulfilmentType
    reason: Annotated[str, Field(max_length=1024)] | None = None
    lines: Annotated[list[CountLine], Field(max_length=MAX_LINES)] | None = None


class ReturnLine(Record):
    sku: Id
    qty: Qty
    resellable: bool


class Return(Event):
    order_id: Id
    location_id: Id
    lines: Annotated[list[ReturnLine], Field(min_length=1, max_length=MAX_LINES)]


# ---- outputs ---------------------------------------------------------------------------------


class StockAvailability(Output):
    sku: str
    location_id: str
    on_hand: int
    reserved: int
    available: int
    updated_at: datetime


class ShipmentLine(Output):
    sku: str
    qty: int


class BackorderedLine(ShipmentLine):
    """A line waiting for stock; a preorder (accepted on expected supply) says when that
    supply is due and the date promised from it (domain/promise.py preorder_promise)."""

    expected_date: datetime | None = None
    promised_date: date | None = None


class RoutedShipment(Output):
    shipment_id: str
    location_id: str
    mode: ShipmentMode
    lines: list[ShipmentLine]
    # the promise (domain/promise.py), in the location's local time: handed to the carrier
    # (click & collect: on the pickup shelf) by `ship_by`; delivered on `promised_delivery`
    # (home, drop-ship) or ready for pickup by `ready_for_pickup_by` (click & collect, transfer)
    ship_by: datetime | None = None
    promised_delivery: date | None = None
    ready_for_pickup_by: datetime | None = None
    # still awaiting acceptance: when its acceptance time-out falls due (network time, counted
    # in the location's preparation hours); None once accepted
    accept_by: datetime | None = None


class RoutedOrder(Output):
    order_id: str
    attempt: int
    status: Literal["routed", "unroutable", "backordered"]
    decided_at: datetime
    shipments: list[RoutedShipment]
    reasons: dict[str, object]
    unroutable_lines: list[ShipmentLine] = []
    # the order's promised date: the latest of its shipments' (delivery or pickup) dates
    promised_date: date | None = None
    # a re-route pushed the promised date later than the one published before
    promise_slipped: bool = False
    previous_promised_date: date | None = None
    # lines waiting for stock (backorders, domain/backorders.py): routed later, or unroutable
    # once they waited longer than the policy's max_wait_days
    backordered_lines: list[BackorderedLine] = []


class ShipmentState(Output):
    shipment_id: str
    location_id: str
    mode: ShipmentMode
    status: str
    lines: list[ShipmentLine]
    destination_location_id: str | None = None
    ship_by: datetime | None = None
    late: bool = False  # not shipped (nor ready for pickup) when the network clock passed ship_by


class OrderEvent(Output):
    event_id: str
    order_id: str
    occurred_at: datetime
    change: str
    order_status: OrderStatus
    shipment_id: str | None = None
    location_id: str | None = None
    shipments: list[ShipmentState] = []
    detail: dict[str, object] = {}


class RefundPayment(Output):
    method: str
    reference: str


class RefundLine(Output):
    sku: str
    qty: int
    unit_price: float
    amount: float


class Refund(Output):
    refund_id: str
    order_id: str
    return_event_id: str
    amount: float
    currency: str
    payment: RefundPayment
    lines: list[RefundLine]
    issued_at: datetime


class StoreLoad(Output):
    location_id: str
    kind: str
    open_orders: int
    open_units: int
    capacity_per_hour: int
    max_backlog: int
    saturation: float
    backlog_saturation: float
    oldest_open_age_s: float
    oldest_open_since: datetime | None
    prep_time_s: dict[str, float] = {}
    updated_at: datetime
    # open shipments not shipped (nor ready for pickup) whose ship_by is past (to the minute)
    late_shipments: int = 0


class BackorderQueue(Output):
    """A SKU's backorders (compacted, key sku): the units and orders waiting for stock, the
    oldest one's wait start (its order's occurred_at), and the units announced by
    expected_receipts that preorders have not claimed yet."""

    sku: str
    backordered: int
    waiting_orders: int
    oldest_since: datetime | None
    updated_at: datetime
    preorderable: int = 0


class DeadLetter(Output):
    source_topic: str
    partition: int
    offset: int
    key: str | None
    raw: str
    raw_encoding: Literal["utf-8", "base64"] = "utf-8"
    error: str
    rejected_at: datetime


# ---- internal --------------------------------------------------------------------------------
# Messages between our own agents. Ours to change (with an upgrade path), but typed like the
# public ones: a producer builds the model, the consumer decodes it or dead-letters it.

Position = tuple[int, int]
"""Where an effect comes from along its origin: (input offset, index of the effect within what
that input produced). Compared as a pair, so no number of effects per input can reach into the
next input's positions (an `offset * stride + index` integer could)."""


class Internal(BaseModel):
    """Base of internal messages: strict, exactly the declared fields."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


def as_position(v: Any) -> Any:
    """Upgrade path: before positions were pairs they were `offset * 1000 + index` integers
    (messages still on the topic at an upgrade, and table states, carry those)."""
    if isinstance(v, int) and not isinstance(v, bool):
        return divmod(v, 1000)
    if isinstance(v, list):
        return tuple(v)
    return v


StockOpKind = Literal["adjust", "set", "reserve", "release", "consume", "short"]


class StockOp(Internal):
    """One change to one SKU at one location, applied by that SKU's owner (domain/stock.py).

    `origin` is '<topic code>:<partition>' of the input that caused it and `seq` its position
    along that origin: the owner drops an op at or below the last position it applied."""

    kind: StockOpKind
    sku: str
    location_id: str
    origin: str
    seq: Position
    qty: int = 0
    reservation_id: str | None = None
    order_id: str | None = None
    event_id: str | None = None

    _seq = field_validator("seq", mode="before")(as_position)

    @property
    def key(self) -> str:
        return f"{self.sku}@{self.location_id}"


class ResyncLocation(Internal):
    """Sent to every stock-ops partition when a location's safety stock changes: each owner
    re-publishes that location's availability, in order with its other ops."""

    kind: Literal["resync_location"]
    location_id: str
    safety_stock: int


class ReservedLine(Internal):
    sku: str
    qty: int


class ReserveShipment(Internal):
    """Give a shipment to a location, atomically at the location's owner: one of its
    `max_backlog` slots and every line's units, or nothing (answered by ShipmentReservation).
    The slot is the shipment's until a ReleaseShipment, or shipping / collection closes it."""

    kind: Literal["reserve_shipment"] = "reserve_shipment"
    order_id: str
    shipment_id: str
    location_id: str
    lines: list[ReservedLine]
    origin: str
    seq: Position
    at: float  # when the slot is taken (load ages)
    due: float | None = None  # its ship_by (POSIX s): late after it, for store-load

    _seq = field_validator("seq", mode="before")(as_position)


class ReleaseShipment(Internal):
    """Give back a shipment's units (every `skus` reservation) and its slot at the location."""

    kind: Literal["release_shipment"] = "release_shipment"
    order_id: str
    shipment_id: str
    location_id: str
    skus: list[str]
    origin: str
    seq: Position

    _seq = field_validator("seq", mode="before")(as_position)


LoadOpKind = Literal["open", "close", "step", "shrink"]


class LoadOp(Internal):
    """A change to a location's load (domain/load.py): a shipment opened or closed there, a
    workflow step done (with its duration), or a shipment shrunk by a line cancellation
    (`shrink`: `units` is what the shipment still holds). Positioned like a stock op."""

    kind: LoadOpKind
    location_id: str
    shipment_id: str
    origin: str
    seq: Position
    at: float
    units: float = 0.0
    step: str | None = None
    seconds: float = 0.0
    due: float | None = None  # "open": the shipment's ship_by (POSIX s)

    _seq = field_validator("seq", mode="before")(as_position)


LocationOpsMessage = Annotated[
    StockOp | ResyncLocation | ReserveShipment | ReleaseShipment | LoadOp,
    Field(discriminator="kind"),
]
"""Everything a location's owner applies besides till sales and supplier feeds."""


class BackorderOp(Internal):
    """To a SKU's backorder queue (domain/backorders.py), keyed by sku: an order `wait`s for
    `qty` units since `since` (epoch s, network time) or `leave`s (routed, cancelled,
    expired); a location owner saw the SKU's availability go up (`stock_up`: `qty` available
    at `location_id` now; `order_id` when one order's released reservations alone caused it);
    supply announced (`expect`: qty due at `location_id` at `since`, epoch s) or received
    (`arrived`: a receipt's qty, which settles what was expected there first); an order asks
    for `qty` units as a preorder (`preorder`: granted whole on the supply expected and not
    yet claimed, or refused); an order's asked preorder was cancelled in part before or
    after its answer (`shrink`: it waits for `qty` units now, a claim beyond them is given
    back; no-op when the order is not in the queue, unlike `wait` it never joins it nor
    answers a turn); the network clock is at `since` (`overdue`, from the queue owner's
    timer: supply announced and not in by the end of its expected day plus the policy's
    `late_grace_days` is late, the preorders it covered are dropped)."""

    kind: Literal["wait", "leave", "stock_up", "expect", "arrived", "preorder", "shrink", "overdue"]
    sku: str
    order_id: str | None = None
    qty: int = 0
    since: float = 0.0
    reason: str | None = None
    location_id: str | None = None
    ref: str | None = None  # expect: the expected_receipt's event_id (a re-read is no news)


class BackorderRetry(Internal):
    """A SKU's queue gives the order its turn: route the waiting units of that SKU."""

    type: Literal["backorder_retry"] = "backorder_retry"
    order_id: str
    sku: str
    ticket: int
    # location_id -> units available there as last signalled by its owner: the order's
    # availability view may not have caught up with the receipt that caused this turn yet
    available: dict[str, int] = {}


class PreorderAccepted(Internal):
    """A SKU's queue accepted the order's waiting units as a preorder on expected supply."""

    type: Literal["preorder_accepted"] = "preorder_accepted"
    order_id: str
    sku: str
    qty: int
    expected_date: float  # epoch s: when the supply that covers it is due
    location_id: str | None = None  # where that supply is due (the promise ships from there)


class PreorderRefused(Internal):
    """A SKU's queue refused an order's preorder: `asked` units, only `left` expected and not
    yet claimed. The order is refused whole (dead-lettered)."""

    type: Literal["preorder_refused"] = "preorder_refused"
    order_id: str
    sku: str
    asked: int
    left: int


class PreorderDropped(Internal):
    """A short receipt ended the supply a SKU's queue had accepted the order's preorder on
    (`reason: short_receipt`), or that supply is late (`late`: not in by the end of its
    expected day plus the policy's grace): its `qty` units wait as a plain backorder, in
    their place, with no expected date (until a later announced receipt covers them: a new
    PreorderAccepted). `left`: the units expected and not yet claimed after the drop."""

    type: Literal["preorder_dropped"] = "preorder_dropped"
    order_id: str
    sku: str
    qty: int
    left: int = 0
    reason: Literal["short_receipt", "late"] = "short_receipt"


class ReservationResult(Internal):
    """A SKU owner's answer to a `reserve` op, sent back to the order that asked."""

    type: Literal["reservation_result"] = "reservation_result"
    order_id: str
    reservation_id: str
    sku: str
    location_id: str
    qty: int
    ok: bool
    free_after: int | None = None


class AcceptanceTimeout(Internal):
    """The order agent's timer: a routed shipment was not accepted in time."""

    type: Literal["acceptance_timeout"] = "acceptance_timeout"
    order_id: str
    shipment_id: str


class ShipByPassed(Internal):
    """The order agent's timer: the network clock passed a shipment's ship_by."""

    type: Literal["ship_by_passed"] = "ship_by_passed"
    order_id: str
    shipment_id: str


class ShipmentReservation(Internal):
    """A location owner's answer to ReserveShipment: `ok` (slot and every line reserved), or
    nothing reserved, with why: `saturated` (no slot left) and/or `free` (the lines short of
    stock -> units still reservable there)."""

    type: Literal["shipment_reservation"] = "shipment_reservation"
    order_id: str
    shipment_id: str
    location_id: str
    ok: bool
    skus: list[str]  # the shipment's lines (what an answer to an abandoned round gives back)
    saturated: bool = False
    free: dict[str, int] = {}


OrderCommand = Annotated[
    ReservationResult
    | ShipmentReservation
    | AcceptanceTimeout
    | ShipByPassed
    | BackorderRetry
    | PreorderAccepted
    | PreorderRefused
    | PreorderDropped,
    Field(discriminator="type"),
]

MODELS: dict[str, Any] = {
    "Location": Location,
    "PosSale": PosSale,
    "SupplierFeed": SupplierFeed,
    "WebOrder": WebOrder,
    "FulfilmentEvent": FulfilmentEvent,
    "Return": Return,
    "StockAvailability": StockAvailability,
    "RoutedOrder": RoutedOrder,
    "OrderEvent": OrderEvent,
    "Refund": Refund,
    "StoreLoad": StoreLoad,
    "DeadLetter": DeadLetter,
    "BackorderQueue": BackorderQueue,
    "BackorderOp": BackorderOp,
    "LocationOpsMessage": LocationOpsMessage,
    "OrderCommand": OrderCommand,
}
"""Every model topics.yaml may name (`model:`), by that name."""
