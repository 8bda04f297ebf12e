"""The location owner (domain/location.py): a shipment gets a slot and all its units, or
nothing; a release gives both back; a re-read op takes nothing twice."""

from __future__ import annotations

from domain.load import LoadState, Shipment
from domain.location import (
    Answer,
    Working,
    apply_stock,
    given_back_by,
    release_shipment,
    reserve_shipment,
    stock_came_back,
)
from domain.stock import StockState
from streams.records import ReleaseShipment, ReservedLine, ReserveShipment, StockOp


class Store:
    """The owner's tables for one location, as dicts; `working` reads through them."""

    def __init__(self, stock: dict[str, int]) -> None:
        self.stock = {sku: StockState(on_hand=n) for sku, n in stock.items()}
        self.load = LoadState()
        self.shipments: dict[str, Shipment] = {}

    def working(self) -> Working:
        return Working(
            location_id="ST-1",
            partition=0,
            safety=0,
            read_stock=lambda sku: self.stock.get(sku),
            read_load=lambda: self.load,
            read_shipment=lambda sid: self.shipments.get(sid),
        )

    def save(self, w: Working) -> None:
        self.stock.update({sku: w.stocks[sku] for sku in w.changed_stock})
        for sid in w.changed_shipments:
            record = w.shipments[sid]
            assert record is not None
            self.shipments[sid] = record
        self.load = w.load

    def reserve(self, sid: str, lines: dict[str, int], offset: int, max_backlog: int) -> Answer:
        w = self.working()
        op = ReserveShipment(
            order_id="O",
            shipment_id=sid,
            location_id="ST-1",
            lines=[ReservedLine(sku=k, qty=v) for k, v in lines.items()],
            origin="wo:0",
            seq=(offset, 0),
            at=1000.0 + offset,
        )
        answer = reserve_shipment(w, op, max_backlog, safety=0)
        self.save(w)
        return answer

    def release(self, sid: str, skus: list[str], offset: int) -> None:
        w = self.working()
        op = ReleaseShipment(
            order_id="O",
            shipment_id=sid,
            location_id="ST-1",
            skus=skus,
            origin="fe:0",
            seq=(offset, 0),
        )
        release_shipment(w, op, safety=0)
        self.save(w)


def test_a_shipment_takes_a_slot_and_every_line_or_nothing() -> None:
    s = Store({"A": 5, "B": 1})
    assert s.reserve("S1", {"A": 2, "B": 1}, 1, max_backlog=5) == Answer(ok=True)
    assert s.stock["A"].reserved == 2 and s.stock["B"].reserved == 1
    assert s.load.open_orders == 1
    refused = s.reserve("S2", {"A": 1, "B": 1}, 2, max_backlog=5)
    assert refused == Answer(ok=False, free={"B": 0})
    assert s.stock["A"].reserved == 2  # nothing of S2 was taken, not even A
    assert s.load.open_orders == 1


def test_a_location_at_max_backlog_takes_no_more_shipments() -> None:
    s = Store({"A": 100})
    answers = [s.reserve(f"S{i}", {"A": 1}, i, max_backlog=5) for i in range(20)]
    assert [a.ok for a in answers] == [True] * 5 + [False] * 15
    assert all(a.saturated for a in answers[5:])
    assert s.load.open_orders == 5 and s.stock["A"].reserved == 5
    s.release("S0", ["A"], 100)
    assert s.load.open_orders == 4 and s.stock["A"].reserved == 4
    assert s.reserve("S-late", {"A": 1}, 21, max_backlog=5).ok


def test_an_op_read_again_after_a_crash_answers_the_same_and_takes_nothing_twice() -> None:
    s = Store({"A": 3})
    assert s.reserve("S1", {"A": 3}, 7, max_backlog=1).ok
    assert s.reserve("S1", {"A": 3}, 7, max_backlog=1).ok  # same op re-read: still granted
    assert s.stock["A"].reserved == 3 and s.load.open_orders == 1
    s.release("S1", ["A"], 8)
    s.release("S1", ["A"], 8)
    assert s.stock["A"].reserved == 0 and s.load.open_orders == 0


def test_no_slot_and_short_stock_are_both_reported() -> None:
    s = Store({"A": 1})
    assert s.reserve("S1", {"A": 1}, 1, max_backlog=1).ok
    assert s.reserve("S2", {"A": 1}, 2, max_backlog=1) == Answer(
        ok=False, saturated=True, free={"A": 0}
    )


def _receive(s: Store, qty: int, offset: int) -> Working:
    w = s.working()
    apply_stock(
        w,
        StockOp(
            kind="adjust", sku="A", location_id="ST-1", origin="sf:0", seq=(offset, 0), qty=qty
        ),
        safety=0,
    )
    s.save(w)
    return w


def test_a_receipt_read_again_after_a_crash_tells_the_backorder_queue_again() -> None:
    """The worker applied the receipt (its state reached the store or the changelog) and died
    before the queue's signal was flushed: the re-read changes nothing, yet signals again."""
    s = Store({"A": 0})
    first = _receive(s, 4, 10)
    assert stock_came_back(first, "A", 4) and first.stocks["A"].on_hand == 4
    again = _receive(s, 4, 10)
    assert again.stocks["A"].on_hand == 4 and not again.changed_stock  # nothing applied twice
    assert stock_came_back(again, "A", 4)
    assert given_back_by(again, "A") is None  # a receipt: no order's own give-back


def test_a_release_read_again_signals_as_its_orders_give_back_and_a_sale_never() -> None:
    s = Store({"A": 2})
    assert s.reserve("S1", {"A": 2}, 1, max_backlog=5).ok
    s.release("S1", ["A"], 2)
    w = s.working()
    op = ReleaseShipment(
        order_id="O", shipment_id="S1", location_id="ST-1", skus=["A"], origin="fe:0", seq=(2, 0)
    )
    release_shipment(w, op, safety=0)  # the same release re-read
    assert stock_came_back(w, "A", 2) and given_back_by(w, "A") == "O"
    sold = s.working()
    sale = StockOp(kind="adjust", sku="A", location_id="ST-1", origin="ps:0", seq=(3, 0), qty=-1)
    apply_stock(sold, sale, safety=0)
    s.save(sold)
    resold = s.working()
    apply_stock(resold, sale, safety=0)  # a sale re-read: no units came back
    assert not stock_came_back(resold, "A", 1)


def test_an_ask_read_again_after_its_shipment_was_given_back_is_refused_not_granted_empty() -> None:
    """Granted, then given back (its order decided again elsewhere after a crash): the ask read
    again must not answer ok, since its position makes every op of it a no-op now."""
    s = Store({"A": 3})
    assert s.reserve("S1", {"A": 2}, 7, max_backlog=5).ok
    s.release("S1", ["A"], 8)
    again = s.reserve("S1", {"A": 2}, 7, max_backlog=5)
    assert again == Answer(ok=False, free={"A": 3})  # the order plans again, a new shipment
    assert s.stock["A"].reserved == 0 and s.load.open_orders == 0
    assert s.reserve("S2", {"A": 2}, 9, max_backlog=5).ok  # as the order's next round does
