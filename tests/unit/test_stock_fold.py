"""The stock fold (domain/stock.py): arithmetic, idempotency, the oversell guard."""

from __future__ import annotations

from collections.abc import Callable
from itertools import count

from hypothesis import given, settings
from hypothesis import strategies as st

from domain.stock import (
    StockState,
    apply,
    ops_for_pos_sale,
    ops_for_supplier_feed,
)
from streams.records import MAX_LINES, Position, StockOp


def op(
    kind: str,
    qty: int = 0,
    seq: int | Position = 1,
    origin: str = "ps:0",
    rid: str | None = None,
) -> StockOp:
    """An op; an int `seq` is the input offset (first effect of that input)."""
    return StockOp(
        kind=kind,  # type: ignore[arg-type]
        sku="SKU",
        location_id="ST-1",
        origin=origin,
        seq=(seq, 0) if isinstance(seq, int) else seq,
        qty=qty,
        reservation_id=rid,
    )


def positions(offset: int) -> Callable[[], Position]:
    """What the runtime's Ctx.position hands out for the input at `offset`."""
    index = count()
    return lambda: (offset, next(index))


def test_a_receipt_adds_and_a_sale_removes_units() -> None:
    s = StockState()
    apply(s, op("adjust", 10, seq=1), 0)
    apply(s, op("adjust", -3, seq=2), 0)
    assert s.on_hand == 7 and s.available(0) == 7


def test_a_sale_of_missing_units_drives_on_hand_negative_but_available_stays_at_zero() -> None:
    s = StockState()
    apply(s, op("adjust", -4), safety_stock=2)
    assert s.on_hand == -4
    assert s.available(2) == 0


def test_a_stock_count_sets_on_hand_even_to_zero() -> None:
    s = StockState(on_hand=12)
    out = apply(s, op("set", 0), 0)
    assert s.on_hand == 0 and out.changed


def test_an_op_replayed_from_the_same_origin_changes_nothing() -> None:
    s = StockState()
    apply(s, op("adjust", 5, seq=(10, 0)), 0)
    apply(s, op("adjust", 5, seq=(10, 1)), 0)
    out = apply(s, op("adjust", 5, seq=(10, 0)), 0)
    assert out.replay and not out.changed
    assert s.on_hand == 10


def test_an_input_with_more_effects_than_any_stride_never_shadows_the_next_input() -> None:
    """One order of MAX_LINES lines, split and re-routed, makes thousands of ops from one input
    (1,002 and 1,999 were seen); with `offset * 1000 + index` the 1,001st took a position of
    the next input, and that input's own ops were then dropped as replays."""
    s = StockState(on_hand=100_000)
    many = 4 * MAX_LINES + 3
    for i in range(many):
        assert not apply(s, op("reserve", 1, seq=(10, i), rid=f"r{i}"), 0).replay
    nxt = apply(s, op("release", seq=(11, 0), rid="r0"), 0)
    assert nxt.changed and not nxt.replay
    assert apply(s, op("release", seq=(10, many - 1), rid="r1"), 0).replay


def test_positions_written_as_integers_before_the_upgrade_still_count() -> None:
    """Upgrade path: a state (and an op still on the topic) from before positions were pairs
    carries `offset * 1000 + index`."""
    s = StockState.from_dict({"on_hand": 5, "reservations": {}, "positions": {"ps:0": 10001}})
    assert s.positions == {"ps:0": (10, 1)}
    legacy = StockOp.model_validate_json(
        b'{"kind":"adjust","sku":"SKU","location_id":"ST-1","origin":"ps:0","seq":10001,"qty":5}'
    )
    assert legacy.seq == (10, 1) and apply(s, legacy, 0).replay
    assert not apply(s, op("adjust", 1, seq=(10, 2)), 0).replay


def test_origins_are_independent() -> None:
    s = StockState()
    apply(s, op("adjust", 5, seq=100, origin="ps:0"), 0)
    out = apply(s, op("adjust", 5, seq=50, origin="sf:0"), 0)
    assert not out.replay and s.on_hand == 10


def test_a_reservation_never_takes_units_below_safety_stock() -> None:
    s = StockState(on_hand=5)
    ok = apply(s, op("reserve", 3, seq=1, rid="r1"), safety_stock=1)
    refused = apply(s, op("reserve", 2, seq=2, rid="r2"), safety_stock=1)
    assert ok.reserved_ok and not refused.reserved_ok
    assert refused.free_after == 1
    assert s.reserved == 3 and s.available(1) == 1


def test_reserving_the_same_id_twice_reserves_once() -> None:
    s = StockState(on_hand=5)
    apply(s, op("reserve", 3, seq=1, rid="r1"), 0)
    again = apply(s, op("reserve", 3, seq=2, rid="r1"), 0)
    assert again.reserved_ok and s.reserved == 3


def test_a_replayed_reserve_answers_as_the_reservation_stands() -> None:
    s = StockState(on_hand=5)
    apply(s, op("reserve", 3, seq=1, rid="r1"), 0)
    apply(s, op("release", seq=2, rid="r1"), 0)
    replay = apply(s, op("reserve", 3, seq=1, rid="r1"), 0)
    assert replay.replay and replay.reserved_ok is False and s.reserved == 0


def test_consuming_a_reservation_drops_on_hand_and_reserved_once() -> None:
    s = StockState(on_hand=5)
    apply(s, op("reserve", 2, seq=1, rid="r1"), 0)
    apply(s, op("consume", seq=2, rid="r1"), 0)
    apply(s, op("consume", seq=3, rid="r1"), 0)
    assert s.on_hand == 3 and s.reserved == 0


def test_a_short_pick_corrects_on_hand_and_shrinks_the_reservation() -> None:
    s = StockState(on_hand=5)
    apply(s, op("reserve", 3, seq=1, rid="r1"), 0)
    apply(s, op("short", 2, seq=2, rid="r1"), 0)
    assert s.on_hand == 3 and s.reservations == {"r1": 1}


def test_state_survives_a_round_trip_through_its_dict() -> None:
    s = StockState(on_hand=4, reservations={"r": 1}, positions={"ps:1": (9, 0)})
    assert StockState.from_dict(s.to_dict()) == s


def test_ops_for_events_number_lines_in_order() -> None:
    ops = ops_for_pos_sale(
        lines=[("A", 1), ("B", 2)],
        location_id="ST-1",
        origin="ps:2",
        position=positions(7),
        event_id="e",
    )
    assert [(o.sku, o.qty, o.seq) for o in ops] == [("A", -1, (7, 0)), ("B", -2, (7, 1))]
    counts = ops_for_supplier_feed(
        feed_type="stock_count",
        lines=[("A", 0)],
        location_id="SUP",
        origin="sf:0",
        position=positions(1),
        event_id="e",
    )
    assert counts[0].kind == "set"


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["reserve", "release", "consume", "adjust"]),
            st.integers(1, 5),
            st.integers(0, 4),
        ),
        max_size=60,
    ),
    st.integers(0, 3),
)
def test_reserved_units_never_exceed_what_was_free_when_reserving(
    steps: list[tuple[str, int, int]], safety: int
) -> None:
    s = StockState(on_hand=10)
    for i, (kind, qty, r) in enumerate(steps):
        before_free = s.free(safety)
        out = apply(s, op(kind, qty if kind != "adjust" else qty, seq=i + 1, rid=f"r{r}"), safety)
        if kind == "reserve" and out.changed:
            assert qty <= before_free
        assert s.reserved == sum(s.reservations.values()) >= 0


def test_a_release_with_a_quantity_gives_back_only_those_units() -> None:
    s = StockState(on_hand=10)
    apply(s, op("reserve", seq=1, qty=5, rid="r1"), 0)
    apply(s, op("release", seq=2, qty=2, rid="r1"), 0)
    assert s.reservations == {"r1": 3} and s.available(0) == 7
    apply(s, op("release", seq=3, qty=3, rid="r1"), 0)
    assert s.reservations == {} and s.available(0) == 10
