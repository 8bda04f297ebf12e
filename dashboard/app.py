"""Stockroute dashboard: the Streamlit entry point and the planner page.

`stockroute dashboard` (dashboard/serve.py) runs this file. It declares the app's pages with
`st.navigation` (the table `serve.PAGES`): "Planner" (this file's `planner_page`, at `/`),
"Store" (`/Store`) and "Returns desk" (`/Returns_desk`) from dashboard/pages/, so the sidebar
reads those names rather than the file names.

Why it looks like this: during a peak a planner needs, at a glance, where orders pile up
and which stores are drowning, and to find any order or SKU in seconds. The page is only
layout: every number comes from dashboard.model over a `DashboardState` that a background
`LiveFeed` (dashboard.source) fills from Kafka, or that dashboard.fixtures builds when
`STOCKROUTE_DASHBOARD_FIXTURES=1` (tests, offline demos, screenshots).

The data part of the page is one `st.fragment(run_every=...)`, so it refreshes by itself
every few seconds (`STOCKROUTE_DASHBOARD_REFRESH_S`, default 3) without rerunning the whole
script or losing what the planner typed in the search boxes.

Stable markers for browser tests: the headers "Store load", "Backlog over time" and "Dead
letters" and keyed containers, which Streamlit renders with the CSS class `st-key-<key>` (and
AppTest finds with `at.container(key=...)`): `store_load` (section) > `store_load_table` (the
st.dataframe) and `store_load_map` (the Plotly geo map); `backlog` (section) > `backlog_chart`
(the Plotly chart); `network_overview` (the metric tiles); `latest_decisions`,
`order_lifecycle`, `sku_stock`, `backorders` > `backorders_table` (with units waiting),
`sla_breaches`; `dead_letters` (section) >
`dead_letters_by_topic`, `dead_letters_by_reason`, `dead_letters_latest`. Keys sit on
containers, not on the tables, because st.dataframe uses a key only when selections are on.

No table shows "None": every frame goes through `model.for_display` before st.dataframe.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

_ROOT = Path(__file__).resolve().parent.parent
if str(_ROOT) not in sys.path:  # `streamlit run dashboard/app.py` without an installed package
    sys.path.insert(0, str(_ROOT))

import pandas as pd  # noqa: E402
import streamlit as st  # noqa: E402

from dashboard import charts, model, serve  # noqa: E402
from dashboard.fixtures import FIXTURE_ORDER_ID, FIXTURE_SKU, Fixture, build_fixture  # noqa: E402
from dashboard.source import FeedStatus, LiveFeed  # noqa: E402

TITLE = "Stockroute — planner view"
FIXTURES_MODE = os.environ.get("STOCKROUTE_DASHBOARD_FIXTURES", "") == "1"
REFRESH_S = max(1.0, float(os.environ.get("STOCKROUTE_DASHBOARD_REFRESH_S", "3")))
DEFAULT_SLA_MIN = 30
KIND_COLOURS = {
    "total": "#1f2937",
    "warehouse": "#2563eb",
    "store": "#dc2626",
    "supplier": "#059669",
    "marketplace": "#d97706",
}


@st.cache_resource(show_spinner="Building fixture data…")
def fixture_data() -> Fixture:
    """One fixture per server process: every session sees the same, consistent network."""
    return build_fixture()


@st.cache_resource(show_spinner=False)
def live_feed() -> LiveFeed:
    """One Kafka reader per server process, shared by every browser session."""
    return LiveFeed().start()


@dataclass(frozen=True)
class View:
    """What one refresh of the page works from."""

    state: model.DashboardState
    now: datetime
    status: FeedStatus | None
    order_hint: str
    sku_hint: str


def current_view() -> View:
    """The state to show and its clock: the fixture's instant, or the live network's clock."""
    if FIXTURES_MODE:
        fx = fixture_data()
        return View(fx.state, fx.as_of, None, FIXTURE_ORDER_ID, FIXTURE_SKU)
    feed = live_feed()
    state = feed.state
    recent = model.latest_decisions(state, 1)
    order_hint = str(recent["order_id"].iloc[0]) if not recent.empty else "ORD-…"
    skus = model.known_skus(state, 1)
    return View(state, state.now(), feed.status(), order_hint, skus[0] if skus else "SKU-…")


def show_status(view: View) -> None:
    """Where the data comes from, and loudly when Kafka is unreachable or topics are missing."""
    if view.status is None:
        st.caption(
            f"Fixture data (simulated peak) as of {view.now:%Y-%m-%d %H:%M:%S} UTC — "
            "set by STOCKROUTE_DASHBOARD_FIXTURES=1"
        )
        return
    status = view.status
    if not status.connected:
        st.warning(status.describe(), icon="⚠️")
    elif not status.caught_up:
        st.info(status.describe())
    else:
        st.caption(f"{status.describe()} · network clock {view.now:%Y-%m-%d %H:%M:%S} UTC")
    drift = (view.now - datetime.now(UTC)).total_seconds()
    if status.messages and abs(drift) > 120:
        st.caption(
            f"The network clock is {abs(drift) / 60:,.0f} min "
            f"{'ahead of' if drift > 0 else 'behind'} the wall clock (simulated time, or no "
            "new messages): times on this page are in the network's clock."
        )
    if status.connected and status.missing_topics:
        st.warning(
            "Topics not found on the broker yet (is `stockroute topics` done?): "
            + ", ".join(status.missing_topics)
        )


# Metric tiles per row: seven tiles on two rows, so no value is clipped on a laptop screen.
# (A comment, not a docstring: Streamlit would draw a bare string of the main script.)
OVERVIEW_COLUMNS = 4


def show_overview(view: View) -> None:
    st.header("Network overview")
    late_min = int(st.session_state.get("sla_threshold_min", DEFAULT_SLA_MIN))
    ov = model.network_overview(view.state, view.now, late_after_s=late_min * 60)
    tiles = model.overview_metrics(ov, late_min)
    box = st.container(key="network_overview")
    for row in range(0, len(tiles), OVERVIEW_COLUMNS):
        cols = box.columns(OVERVIEW_COLUMNS)
        for col, tile in zip(cols, tiles[row : row + OVERVIEW_COLUMNS], strict=False):
            col.metric(tile.label, tile.value, help=tile.help)


def plotly_config() -> dict[str, object]:
    """Plotly's config for this server: country outlines from /app/static/, never a CDN."""
    return charts.plotly_config(str(st.get_option("server.baseUrlPath") or ""))


def _time_column(df: pd.DataFrame, column: str, label: str, fmt: str) -> Any:
    """A DatetimeColumn, or a TextColumn where `for_display` turned gaps into text."""
    if pd.api.types.is_datetime64_any_dtype(df[column]):
        return st.column_config.DatetimeColumn(label, format=fmt)
    return st.column_config.TextColumn(label)


STORE_LOAD_SHOWN = [
    "location_id",
    "name",
    "kind",
    "now",
    "saturation",
    "open_orders",
    "open_units",
    "capacity_per_hour",
    "backlog_saturation",
    "oldest_open_age_s",
    "prep_time_s",
    "updated_at",
]


def show_store_load(view: View) -> None:
    st.header("Store load")
    table = model.store_load_table(view.state, view.now)
    with st.container(key="store_load"):
        if table.empty:
            st.info("No store-load published yet: the routing worker publishes it per location.")
        shown = model.for_display(table[STORE_LOAD_SHOWN])
        styled = shown.style.map(model.saturation_cell_style, subset=["saturation"]).format(
            {"saturation": "{:.2f}"}
        )
        st.container(key="store_load_table").dataframe(
            styled,
            hide_index=True,
            width="stretch",
            height=min(38 + 35 * max(len(table), 3), 560),
            column_config={
                "location_id": st.column_config.TextColumn("location", pinned=True),
                "name": st.column_config.TextColumn("name", width="medium"),
                "now": st.column_config.TextColumn(
                    "now",
                    help="at the network clock: preparing web orders, open (walk-in only) or "
                    "closed, from the location's calendar (none: around the clock)",
                ),
                "saturation": st.column_config.NumberColumn(
                    "saturation",
                    help="open orders / capacity per hour: hours of work queued "
                    "(green idle, amber half an hour, red an hour or more)",
                    format="%.2f",
                ),
                "open_orders": st.column_config.NumberColumn("open orders"),
                "open_units": st.column_config.NumberColumn("open units"),
                "capacity_per_hour": st.column_config.NumberColumn("capacity / h"),
                "backlog_saturation": st.column_config.NumberColumn(
                    "vs max backlog", help="open orders / max_backlog", format="%.2f"
                ),
                "oldest_open_age_s": st.column_config.NumberColumn(
                    "oldest open (s)", help="age of the oldest open shipment, now", format="%d"
                ),
                "prep_time_s": st.column_config.NumberColumn(
                    "prep time (s)", help="typical routing-to-hand-over time", format="%d"
                ),
                "updated_at": _time_column(shown, "updated_at", "updated", "HH:mm:ss"),
            },
        )
        left, right = st.columns([2, 1])
        points = model.map_points(table)
        with left:
            if not points:
                st.caption("No location coordinates yet (the `locations` topic).")
            else:
                st.container(key="store_load_map").plotly_chart(
                    charts.store_map(points), config=plotly_config(), width="stretch"
                )
                st.caption(
                    "Colour: saturation, green idle → red an hour of work or more queued · "
                    "size: open orders · hover a dot for the location"
                )
        with right:
            st.markdown("**Orders by status** (followed by this dashboard)")
            st.container(key="order_statuses").dataframe(
                model.for_display(model.status_breakdown(view.state)),
                hide_index=True,
                width="stretch",
            )


def show_backlog(view: View) -> None:
    st.header("Backlog over time")
    series = model.backlog_series(view.state)
    with st.container(key="backlog"):
        if series.empty:
            st.info("No backlog samples yet: they start with the first store-load message.")
        long = model.backlog_long(series)
        # naive UTC times: Plotly draws them as given, so the axis shows UTC whatever the
        # browser's zone is (the page's clock is UTC everywhere)
        long["time"] = pd.to_datetime(long["time"], utc=True).dt.tz_localize(None)
        st.container(key="backlog_chart").plotly_chart(
            charts.backlog_chart(long, KIND_COLOURS), config=plotly_config(), width="stretch"
        )
        if not series.empty:
            last = series.iloc[-1]
            peak = int(series["total"].max())
            st.caption(
                f"Now {int(last['total']):,} open orders ({int(last['units']):,} units); "
                f"peak {peak:,} in the shown history."
            )


def show_order_flow(view: View) -> None:
    st.header("Order flow")
    st.subheader("Latest routing decisions")
    decisions = model.latest_decisions(view.state, 50)
    if decisions.empty:
        st.info("No routing decisions yet (routed-orders).")
    else:
        st.container(key="latest_decisions").dataframe(
            model.for_display(decisions),
            hide_index=True,
            width="stretch",
            height=320,
            column_config={
                "decided_at": _time_column(decisions, "decided_at", "decided", "HH:mm:ss"),
                "reasons": st.column_config.TextColumn("reasons", width="large"),
            },
        )
    order_id = st.text_input(
        "Find an order", key="order_search", placeholder=f"order id, e.g. {view.order_hint}"
    ).strip()
    if not order_id:
        return
    lifecycle = model.order_lifecycle(view.state, order_id)
    if lifecycle.empty:
        st.info(f"No events for order {order_id} in the dashboard's history.")
        return
    status = model.order_status(view.state, order_id)
    st.markdown(f"**{order_id}** — current status: `{status}` · {len(lifecycle)} events")
    shown = model.for_display(lifecycle)
    st.container(key="order_lifecycle").dataframe(
        shown,
        hide_index=True,
        width="stretch",
        column_config={"time": _time_column(shown, "time", "time", "HH:mm:ss.SSS")},
    )


def show_stock(view: View) -> None:
    st.header("Stock")
    sku = st.text_input(
        "Find a SKU", key="sku_search", placeholder=f"SKU, e.g. {view.sku_hint}"
    ).strip()
    if not sku:
        return
    stock = model.sku_stock(view.state, sku)
    if stock.empty:
        st.info(f"No stock records for {sku} (stock-availability).")
        return
    st.markdown(
        f"**{sku}** — on hand {int(stock['on_hand'].sum()):,}, reserved "
        f"{int(stock['reserved'].sum()):,}, available {int(stock['available'].sum()):,} "
        f"across {len(stock)} locations"
    )
    shown = model.for_display(stock)
    st.container(key="sku_stock").dataframe(
        shown,
        hide_index=True,
        width="stretch",
        column_config={"updated_at": _time_column(shown, "updated_at", "updated", "HH:mm:ss")},
    )


def show_backorders(view: View) -> None:
    """Units waiting for stock per SKU (backorders), the longest wait first."""
    st.header("Backorders")
    table = model.backorders_table(view.state, view.now)
    with st.container(key="backorders"):
        if table.empty:
            st.caption("No backordered units (backorders).")
            return
        oldest = table.iloc[0]
        st.markdown(
            f"**{int(table['backordered'].sum()):,}** units waiting over {len(table):,} SKUs; "
            f"the oldest backorder ({oldest['sku']}) has waited "
            f"{oldest['oldest_wait_h']} h"
        )
        shown = model.for_display(table)
        st.container(key="backorders_table").dataframe(
            shown,
            hide_index=True,
            width="stretch",
            column_config={
                "oldest_since": _time_column(shown, "oldest_since", "oldest since", "DD HH:mm")
            },
        )


def show_sla(view: View) -> None:
    st.header("SLA")
    minutes = st.slider(
        "Waiting longer than (minutes) to leave the location",
        min_value=5,
        max_value=240,
        value=DEFAULT_SLA_MIN,
        step=5,
        key="sla_threshold_min",
    )
    breaches = model.sla_breaches(view.state, view.now, minutes * 60)
    if breaches.empty:
        st.success(f"No shipment has waited longer than {minutes} min.")
        return
    st.markdown(
        f"**{len(breaches)}** locations with shipments waiting longer than {minutes} min, "
        f"{int(breaches['waiting_shipments'].sum()):,} shipments in all"
    )
    st.container(key="sla_breaches").dataframe(
        model.for_display(breaches),
        hide_index=True,
        width="stretch",
        column_config={
            "now": st.column_config.TextColumn(
                "now", help="preparing, open or closed now (its calendar, network clock)"
            ),
            "late_shipments": st.column_config.NumberColumn(
                "late", help="shipments past their promise (ship_by), when decisions carry one"
            ),
            "oldest_wait_s": st.column_config.NumberColumn("oldest wait (s)", format="%d"),
            "store_load_oldest_age_s": st.column_config.NumberColumn(
                "store-load oldest (s)", format="%d"
            ),
        },
    )


DEAD_LETTERS_SHOWN = 20


def show_dead_letters(view: View) -> None:
    st.header("Dead letters")
    total = model.dead_letter_total(view.state)
    with st.container(key="dead_letters"):
        if total == 0:
            st.success(
                "No dead letters in the history read: every input message was applied "
                "(`dead-letters` is empty)."
            )
            return
        st.markdown(
            f"**{total:,}** input message{'s' if total != 1 else ''} refused by the workers "
            "in the history read, "
            "each with the reason and the message as it arrived (`dead-letters`)"
        )
        by_topic, by_reason = st.columns(2)
        with by_topic:
            st.markdown("**By source topic**")
            st.container(key="dead_letters_by_topic").dataframe(
                model.for_display(model.dead_letters_by_topic(view.state)),
                hide_index=True,
                width="stretch",
                column_config={
                    "source_topic": st.column_config.TextColumn("source topic"),
                    "dead_letters": st.column_config.NumberColumn("dead letters"),
                },
            )
        with by_reason:
            st.markdown("**By reason**")
            st.container(key="dead_letters_by_reason").dataframe(
                model.for_display(model.dead_letters_by_reason(view.state)),
                hide_index=True,
                width="stretch",
                column_config={
                    "reason_class": st.column_config.TextColumn(
                        "reason", help="the first words of the reason, without ids"
                    ),
                    "dead_letters": st.column_config.NumberColumn("dead letters"),
                },
            )
        latest = model.for_display(model.latest_dead_letters(view.state, DEAD_LETTERS_SHOWN))
        st.markdown(f"**Latest {len(latest)}** (newest first)")
        st.container(key="dead_letters_latest").dataframe(
            latest,
            hide_index=True,
            width="stretch",
            column_config={
                "rejected_at": _time_column(latest, "rejected_at", "rejected", "MM-DD HH:mm:ss"),
                "source_topic": st.column_config.TextColumn("source topic"),
                "reason_class": st.column_config.TextColumn("reason class"),
                "error": st.column_config.TextColumn("reason", width="large"),
                "raw": st.column_config.TextColumn(
                    "raw payload", width="large", help="the refused message's value as received"
                ),
            },
        )


@st.fragment(run_every=REFRESH_S)
def live_page() -> None:
    """Everything data-driven; Streamlit reruns just this every REFRESH_S seconds."""
    view = current_view()
    show_status(view)
    show_overview(view)
    show_store_load(view)
    show_backlog(view)
    show_order_flow(view)
    show_dead_letters(view)
    show_stock(view)
    show_backorders(view)
    show_sla(view)


def planner_page() -> None:
    """The planner page: static frame (title, sidebar) once per run; the fragment the rest."""
    st.set_page_config(page_title=TITLE, page_icon="📦", layout="wide")
    st.title(TITLE)
    with st.sidebar:
        st.subheader("Source")
        if FIXTURES_MODE:
            st.write("Fixture data (STOCKROUTE_DASHBOARD_FIXTURES=1)")
        else:
            st.write(f"Kafka at `{live_feed().settings.bootstrap}`")
            st.caption(
                "Compacted topics from the beginning; order topics and dead letters: last 6 hours."
            )
        st.caption(f"Refreshes every {REFRESH_S:g} s.")
    live_page()


def main() -> None:
    """Declare the pages (sidebar names from serve.PAGES) and run the one asked for."""
    st.set_page_config(page_title=TITLE, page_icon="📦", layout="wide")
    pages = []
    for spec in serve.PAGES:
        if spec.file is None:
            page = st.Page(planner_page, title=spec.title, icon=spec.icon, default=True)
        else:
            page = st.Page(
                str(serve.APP.parent / spec.file),
                title=spec.title,
                icon=spec.icon,
                url_path=spec.url_path,
            )
        pages.append(page)
    st.navigation(pages).run()


main()
