"""Store page: the associate's guided workflow, from accepting a web order to handing it over.

Layout only: the queue, the next steps and every message come from dashboard.store. Each
action publishes one `fulfilment-events` message (fresh event_id, keyed by order_id); the page
then shows what the system confirmed on `order-events` (or the dead-letter reason), never an
optimistic copy. The data part refreshes by itself (`st.fragment(run_every=...)`).

Stable markers for tests (containers render with the CSS class `st-key-<key>`):
`store_load` (load metrics, pause controls), `store_queue` (the queue table), `shipment_panel`
(the selected shipment), `action_result` (what the system said about the last action),
`store_pick_list`; widgets: `store_id`, `queue_search`, `shipment_id`, `act_accept`,
`reject_reason`, `act_reject`, `found_<shipment>_<sku>`, `act_pick`, `act_pack`, `act_label`
(the label download, which sends label_printed), `act_ship`, `act_ready`, `collect_order_id`,
`act_collect`, `pause_minutes`, `act_pause`, `act_resume`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

_ROOT = Path(__file__).resolve().parents[2]
if str(_ROOT) not in sys.path:  # `streamlit run dashboard/app.py` without an installed package
    sys.path.insert(0, str(_ROOT))

import pandas as pd  # noqa: E402
import streamlit as st  # noqa: E402

from dashboard import store, store_ui  # noqa: E402
from dashboard.label import label_data, label_pdf  # noqa: E402
from dashboard.store import StoreError  # noqa: E402

TITLE = "Stockroute — store"


def record_sent(src: store_ui.Source, value: dict[str, Any], seq: int) -> None:
    st.session_state["last_action"] = {
        "event_id": value["event_id"],
        "order_id": value["order_id"],
        "shipment_id": value["shipment_id"],
        "type": value["type"],
        "seq": seq,
    }
    st.session_state.pop("action_error", None)


def act(src: store_ui.Source, build: Any) -> None:
    """Build the message (StoreError: shown, nothing sent), publish it, remember it."""
    with src.state.lock:
        seq = src.state.seq
    try:
        value = build()
    except StoreError as exc:
        st.session_state["action_error"] = str(exc)
        return
    try:
        src.publisher.send(store.H_FULFILMENT, value["order_id"], value)
    except Exception as exc:  # noqa: BLE001 - PublishError and anything else: shown
        st.session_state["action_error"] = str(exc)
        return
    record_sent(src, value, seq)


def show_load(src: store_ui.Source, store_id: str) -> None:
    st.header("Walk-in customers first")
    load = store.store_load(src.state, store_id, src.now)
    box = st.container(key="store_load")
    cols = box.columns(5)
    cols[0].metric("Open orders", f"{load.open_orders}", help="shipments open at this store")
    cols[1].metric("Open units", f"{load.open_units}")
    cols[2].metric(
        "Saturation",
        f"{load.saturation:.2f}",
        help=f"hours of queued work: open orders / capacity ({load.capacity_per_hour}/h)",
    )
    cols[3].metric("Vs max backlog", f"{load.backlog_saturation:.0%}")
    cols[4].metric("Oldest open", f"{load.oldest_open_age_s / 60:.0f} min")
    if load.paused:
        assert load.paused_until is not None
        box.warning(
            f"Web orders paused until {load.paused_until:%H:%M} UTC: routing sends no new "
            "orders here until then (orders already here stay in the queue)."
        )
        if box.button("Resume web orders now", key="act_resume"):
            pause(src, store_id, None)
    else:
        left, right = box.columns([1, 2])
        minutes = left.selectbox(
            "Pause web orders for",
            store.PAUSE_MINUTES,
            index=1,
            format_func=lambda m: f"{m} min",
            key="pause_minutes",
        )
        right.write("")
        if right.button("Pause web orders (walk-in customers first)", key="act_pause"):
            pause(src, store_id, int(minutes))
    if st.session_state.get("pause_sent"):
        box.caption(st.session_state["pause_sent"])


def pause(src: store_ui.Source, store_id: str, minutes: int | None) -> None:
    try:
        record = store.pause_record(src.state, store_id, src.now, minutes)
        src.publisher.send(store.H_LOCATIONS, store_id, record)
    except Exception as exc:  # noqa: BLE001 - StoreError, PublishError: shown
        st.session_state["pause_sent"] = f"Not sent: {exc}"
        return
    st.session_state["pause_sent"] = (
        "Resume sent (locations)."
        if minutes is None
        else f"Pause until {record['paused_until'][11:16]} UTC sent (locations); "
        "the page shows it once the locations topic has it."
    )


def show_queue(src: store_ui.Source, store_id: str) -> list[store.QueueItem]:
    st.header("Queue")
    search = st.text_input(
        "Find an order", key="queue_search", placeholder="order or shipment id"
    ).strip()
    items = store.queue(src.state, store_id, src.now, search)
    box = st.container(key="store_queue")
    if not items:
        box.info(
            f"No open shipment matching {search!r} here."
            if search
            else "No open shipment at this store."
        )
        return items
    table = pd.DataFrame(
        [
            {
                "order_id": i.order_id,
                "shipment_id": i.shipment_id,
                "mode": i.mode,
                "status": i.status,
                "next_step": i.next_step,
                "waiting_min": round(i.waiting_s / 60),
                "units": i.units,
                "lines": i.lines,
            }
            for i in items
        ],
        columns=list(store.QUEUE_COLUMNS),
    )
    box.dataframe(
        table,
        hide_index=True,
        width="stretch",
        height=min(38 + 35 * len(table), 400),
        column_config={
            "waiting_min": st.column_config.NumberColumn("waiting (min)", format="%d"),
            "next_step": st.column_config.TextColumn("next step"),
        },
    )
    box.caption(f"{len(items)} open shipment(s), oldest first.")
    return items


def show_shipment(src: store_ui.Source, store_id: str, items: list[store.QueueItem]) -> None:
    if not items:
        return
    by_id = {i.shipment_id: i for i in items}
    sid = st.selectbox(
        "Shipment to work on",
        list(by_id),
        format_func=lambda s: f"{s} — {by_id[s].next_step} ({by_id[s].status})",
        key="shipment_id",
    )
    ship = store.shipment(src.state, str(sid)) if sid else None
    if ship is None:
        return
    panel = st.container(key="shipment_panel", border=True)
    view = store.order(src.state, ship.order_id)
    placed = view.placed if view else None
    customer = (placed or {}).get("customer") or {}
    panel.subheader(f"{ship.shipment_id} · {ship.mode.replace('_', ' ')} · {ship.status}")
    panel.caption(
        f"Order {ship.order_id}"
        + (f" for {customer['name']}" if customer.get("name") else "")
        + f" · {ship.units} unit(s)"
    )
    steps = store.next_steps(ship)
    now = src.now

    if ship.status in ("accepted",):
        panel.markdown("**Pick list** — enter what you found on the shelf")
        found: dict[str, int] = {}
        for line in store.pick_list([ship]):
            found[line.sku] = int(
                panel.number_input(
                    f"{line.sku}: {line.qty} to pick — found",
                    min_value=0,
                    max_value=line.qty,
                    value=line.qty,
                    step=1,
                    key=f"found_{ship.shipment_id}_{line.sku}",
                )
            )
        short = {s: ship.lines[s] - q for s, q in found.items() if q < ship.lines[s]}
        if short:
            panel.warning(
                "Short pick: "
                + ", ".join(f"{s} ×{q} missing" for s, q in sorted(short.items()))
                + ". The system corrects this store's stock and re-routes the missing units."
            )
        if panel.button("Confirm pick", key="act_pick", type="primary"):
            act(src, lambda: store.pick_event(ship, store_id, found, now)[0])
    else:
        panel.dataframe(
            pd.DataFrame(
                [{"sku": s, "qty": q} for s, q in sorted(ship.lines.items())],
                columns=["sku", "qty"],
            ),
            hide_index=True,
        )

    if "accepted" in steps and panel.button("Accept", key="act_accept", type="primary"):
        act(src, lambda: store.fulfilment_event(ship, store_id, "accepted", now))
    if "packed" in steps and panel.button("Packed", key="act_pack", type="primary"):
        act(src, lambda: store.fulfilment_event(ship, store_id, "packed", now))
    if ship.mode != "click_collect" and ship.status in ("packed", "label_printed"):
        show_label(src, panel, ship, store_id)
    if "shipped" in steps and panel.button(
        "Handed over to the carrier (shipped)", key="act_ship", type="primary"
    ):
        act(src, lambda: store.fulfilment_event(ship, store_id, "shipped", now))
    if "ready_for_pickup" in steps and panel.button(
        "Ready for pickup (on the pickup shelf)", key="act_ready", type="primary"
    ):
        act(src, lambda: store.fulfilment_event(ship, store_id, "ready_for_pickup", now))
    if "collected" in steps:
        given = panel.text_input(
            "Order id given by the customer", key="collect_order_id", placeholder="e.g. O-1042"
        )
        if panel.button("Collected by the customer", key="act_collect", type="primary"):

            def collected() -> dict[str, Any]:
                store.check_collection(ship, given)
                return store.fulfilment_event(ship, store_id, "collected", now)

            act(src, collected)
    if "rejected" in steps:
        with panel.expander("Cannot fulfil it? Reject"):
            reason = st.selectbox(
                "Reason",
                list(store.REJECT_REASONS),
                format_func=lambda r: store.REJECT_REASONS[r],
                key="reject_reason",
            )
            if st.button("Reject this shipment", key="act_reject"):
                act(
                    src,
                    lambda: store.fulfilment_event(ship, store_id, "rejected", now, reason=reason),
                )


def show_label(src: store_ui.Source, panel: Any, ship: store.ShipmentView, store_id: str) -> None:
    view = store.order(src.state, ship.order_id)
    with src.state.lock:
        sender = src.state.locations.get(ship.location_id)
        dest = src.state.locations.get(ship.destination_location_id or "")
    try:
        data = label_data(ship, view.placed if view else None, sender, dest, src.now)
    except StoreError as exc:
        panel.error(f"No label: {exc}")
        return
    printing = ship.status == "packed"

    def printed() -> None:
        if printing:
            act(src, lambda: store.fulfilment_event(ship, store_id, "label_printed", src.now))

    panel.download_button(
        "Print the shipping label (PDF)" if printing else "Reprint the shipping label (PDF)",
        data=label_pdf(data),
        file_name=f"label-{ship.shipment_id}.pdf",
        mime="application/pdf",
        key="act_label",
        on_click=printed,
        type="primary" if printing else "secondary",
    )


def show_result(src: store_ui.Source, box: Any) -> None:
    error = st.session_state.get("action_error")
    if error:
        box.error(f"Not sent: {error}")
        return
    last = st.session_state.get("last_action")
    if not last:
        return
    outcome = store.action_outcome(src.state, last)
    text = f"{last['shipment_id']}: {outcome.text}"
    if outcome.state == "confirmed":
        box.success(text)
    elif outcome.state == "refused":
        box.error(text)
    else:
        box.info(text)


def show_pick_list(src: store_ui.Source, store_id: str) -> None:
    lines = store.store_pick_list(src.state, store_id)
    if not lines:
        return
    with st.expander(f"Batch pick list: {len(lines)} SKU(s) across accepted shipments"):
        st.container(key="store_pick_list").dataframe(
            pd.DataFrame(
                [
                    {"sku": ln.sku, "qty": ln.qty, "shipments": ", ".join(ln.shipments)}
                    for ln in lines
                ],
                columns=["sku", "qty", "shipments"],
            ),
            hide_index=True,
            width="stretch",
        )


@st.fragment(run_every=store_ui.refresh_s())
def live_page() -> None:
    src = store_ui.source()
    store_ui.show_status(src)
    store_id = store_ui.pick_store(src, "store_id")
    if store_id is None:
        return
    show_load(src, store_id)
    items = show_queue(src, store_id)
    result = st.container(key="action_result")  # filled after the action of this run
    show_shipment(src, store_id, items)
    show_result(src, result)
    show_pick_list(src, store_id)


def main() -> None:
    st.set_page_config(page_title=TITLE, page_icon="🏬", layout="wide")
    st.title(TITLE)
    live_page()


main()
