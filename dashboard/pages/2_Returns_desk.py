"""Returns desk: a web customer returns in any store; the refund goes to the original payment.

Layout only (logic in dashboard.store): find the order by id, see what was shipped or
collected and what is still returnable, choose lines, quantities and resellable or damaged,
submit: the page publishes one `returns` message (fresh event_id, keyed by order_id) and then
shows the refund the system issued (`refunds`: amount, payment method and reference) or the
reason it refused the return (`dead-letters`).

Stable markers for tests: containers `return_order` (the order's returnable lines),
`return_result` (refund or refusal); widgets `return_store`, `return_order_id`,
`ret_qty_<sku>`, `ret_cond_<sku>`, `ret_submit`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

_ROOT = Path(__file__).resolve().parents[2]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

import pandas as pd  # noqa: E402
import streamlit as st  # noqa: E402

from dashboard import store, store_ui  # noqa: E402
from dashboard.store import StoreError  # noqa: E402

TITLE = "Stockroute — returns desk"
CONDITIONS = {"resellable": "Resellable (back on the shelf)", "damaged": "Damaged"}


def show_order(src: store_ui.Source, store_id: str) -> None:
    st.header("Find the order")
    order_id = st.text_input(
        "Order id", key="return_order_id", placeholder="from the customer's receipt or e-mail"
    ).strip()
    if not order_id:
        return
    view = store.order(src.state, order_id)
    if view is None or (view.placed is None and not view.shipments):
        st.info(f"No order {order_id} known here (web-orders, order-events).")
        return
    box = st.container(key="return_order", border=True)
    box.markdown(f"**{view.order_id}** — status `{view.status}`")
    lines = store.returnable(view)
    if not lines:
        box.info("Nothing of this order was shipped or collected yet: nothing to return.")
        return
    box.dataframe(
        pd.DataFrame(
            [
                {
                    "sku": ln.sku,
                    "delivered": ln.delivered,
                    "returned": ln.returned,
                    "returnable": ln.returnable,
                    "unit_price": ln.unit_price,
                }
                for ln in lines
            ],
            columns=["sku", "delivered", "returned", "returnable", "unit_price"],
        ),
        hide_index=True,
        width="stretch",
    )
    chosen: list[tuple[str, Any, bool]] = []
    for ln in lines:
        if ln.returnable == 0:
            continue
        left, right = box.columns([1, 1])
        qty = left.number_input(
            f"{ln.sku}: units returned (of {ln.returnable})",
            min_value=0,
            max_value=ln.returnable,
            value=0,
            step=1,
            key=f"ret_qty_{ln.sku}",
        )
        cond = right.selectbox(
            f"{ln.sku}: condition",
            list(CONDITIONS),
            format_func=lambda c: CONDITIONS[c],
            key=f"ret_cond_{ln.sku}",
        )
        chosen.append((ln.sku, int(qty), cond == "resellable"))
    if not chosen:
        box.info("Every delivered unit of this order was already returned.")
        return
    currency = str((view.placed or {}).get("currency") or "")
    prices = {ln.sku: ln.unit_price or 0.0 for ln in lines}
    expected = sum(int(q) * prices[sku] for sku, q, _ in chosen)
    box.caption(f"Refund expected for the chosen units: {expected:.2f} {currency}")
    if box.button("Submit the return", key="ret_submit", type="primary"):
        try:
            value = store.return_message(view, store_id, chosen, src.now)
            src.publisher.send(store.H_RETURNS, view.order_id, value)
        except StoreError as exc:
            st.session_state["return_error"] = str(exc)
            return
        except Exception as exc:  # noqa: BLE001 - PublishError and the like: shown
            st.session_state["return_error"] = f"not sent: {exc}"
            return
        st.session_state.pop("return_error", None)
        st.session_state["last_return"] = {
            "order_id": view.order_id,
            "event_id": value["event_id"],
        }


def show_result(src: store_ui.Source, box: Any) -> None:
    error = st.session_state.get("return_error")
    if error:
        box.error(f"Return not sent: {error}")
        return
    last = st.session_state.get("last_return")
    if not last:
        return
    outcome = store.return_outcome(src.state, last["order_id"], last["event_id"])
    text = f"{last['order_id']}: {outcome.text}"
    if outcome.state == "confirmed":
        box.success(text)
    elif outcome.state == "refused":
        box.error(text)
    else:
        box.info(text)


@st.fragment(run_every=store_ui.refresh_s())
def live_page() -> None:
    src = store_ui.source()
    store_ui.show_status(src)
    store_id = store_ui.pick_store(src, "return_store")
    if store_id is None:
        return
    result = st.container(key="return_result")
    show_order(src, store_id)
    show_result(src, result)


def main() -> None:
    st.set_page_config(page_title=TITLE, page_icon="↩️", layout="wide")
    st.title(TITLE)
    live_page()


main()
