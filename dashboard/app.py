"""Stockroute planner dashboard: the Streamlit page (`streamlit run dashboard/app.py`).

Why it looks like this: during a peak a planner needs, at a glance, where orders pile up
and which stores are drowning, and to find any order or SKU in seconds. The page is only
layout: every number comes from dashboard.model over a `DashboardState` that a background
`LiveFeed` (dashboard.source) fills from Kafka, or that dashboard.fixtures builds when
`STOCKROUTE_DASHBOARD_FIXTURES=1` (tests, offline demos, screenshots).

The data part of the page is one `st.fragment(run_every=...)`, so it refreshes by itself
every few seconds (`STOCKROUTE_DASHBOARD_REFRESH_S`, default 3) without rerunning the whole
script or losing what the planner typed in the search boxes.

Stable markers for browser tests: the headers "Store load" and "Backlog over time" and keyed
containers, which Streamlit renders with the CSS class `st-key-<key>` (and AppTest finds with
`at.container(key=...)`): `store_load` (section) > `store_load_table` (the st.dataframe) and
`store_load_map`; `backlog` (section) > `backlog_chart` (the altair chart); `network_overview`
(the metric row); `latest_decisions`, `order_lifecycle`, `sku_stock`, `sla_breaches`. Keys sit
on containers, not on the tables, because st.dataframe uses a key only when selections are on.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent
if str(_ROOT) not in sys.path:  # `streamlit run dashboard/app.py` without an installed package
    sys.path.insert(0, str(_ROOT))

import altair as alt  # noqa: E402
import pandas as pd  # noqa: E402
import pydeck as pdk  # noqa: E402
import streamlit as st  # noqa: E402

from dashboard import model  # noqa: E402
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


def show_overview(view: View) -> None:
    st.header("Network overview")
    late_min = int(st.session_state.get("sla_threshold_min", DEFAULT_SLA_MIN))
    ov = model.network_overview(view.state, view.now, late_after_s=late_min * 60)
    cols = st.container(key="network_overview").columns(7)
    cols[0].metric("Orders routed (1 h)", f"{ov.orders_routed:,}", help="distinct orders routed")
    cols[1].metric("In preparation", f"{ov.in_preparation:,}", help="orders being prepared now")
    cols[2].metric(
        "Shipped (1 h)",
        f"{ov.shipped:,}",
        help="orders handed over in the last hour (shipped or ready for pickup)",
    )
    cols[3].metric(
        "Late",
        f"{ov.late:,}",
        help=f"not handed over within {late_min} min of routing (the SLA threshold below)",
    )
    cols[4].metric(
        "Routing rate", f"{ov.routing_rate_per_min:.1f}/min", help="decisions, last 5 minutes"
    )
    cols[5].metric("Unroutable", f"{ov.unroutable_rate:.1%}", help="share of decisions (1 h)")
    cols[6].metric("Re-routed", f"{ov.reroute_rate:.1%}", help="decisions with attempt > 1 (1 h)")


def _map(table: pd.DataFrame) -> pdk.Deck | None:
    points = model.map_points(table)
    if not points:
        return None
    lat = sum(p["lat"] for p in points) / len(points)
    lon = sum(p["lon"] for p in points) / len(points)
    layer = pdk.Layer(
        "ScatterplotLayer",
        data=points,
        get_position="[lon, lat]",
        get_fill_color="colour",
        get_radius="radius",
        radius_min_pixels=4,
        radius_max_pixels=40,
        pickable=True,
        stroked=True,
        get_line_color=[40, 40, 40, 160],
        line_width_min_pixels=1,
    )
    return pdk.Deck(
        layers=[layer],
        initial_view_state=pdk.ViewState(latitude=lat, longitude=lon, zoom=5),
        tooltip={"text": "{location_id} ({kind})\n{name}\nopen {open_orders}, sat {saturation}"},
        map_style=None,
    )


STORE_LOAD_SHOWN = [
    "location_id",
    "name",
    "kind",
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
        top = max(1.0, float(table["saturation"].max())) if not table.empty else 1.0
        st.container(key="store_load_table").dataframe(
            table[STORE_LOAD_SHOWN],
            hide_index=True,
            width="stretch",
            height=min(38 + 35 * max(len(table), 3), 560),
            column_config={
                "location_id": st.column_config.TextColumn("location", pinned=True),
                "saturation": st.column_config.ProgressColumn(
                    "saturation",
                    help="open orders / capacity per hour: hours of work queued",
                    format="%.2f",
                    min_value=0.0,
                    max_value=top,
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
                "updated_at": st.column_config.DatetimeColumn("updated", format="HH:mm:ss"),
            },
        )
        left, right = st.columns([2, 1])
        deck = _map(table)
        with left:
            if deck is None:
                st.caption("No location coordinates yet (the `locations` topic).")
            else:
                st.container(key="store_load_map").pydeck_chart(deck, height=380)
                st.caption("Green: idle · red: an hour of work or more queued · size: open orders")
        with right:
            st.markdown("**Orders by status** (followed by this dashboard)")
            st.container(key="order_statuses").dataframe(
                model.status_breakdown(view.state), hide_index=True, width="stretch"
            )


def show_backlog(view: View) -> None:
    st.header("Backlog over time")
    series = model.backlog_series(view.state)
    with st.container(key="backlog"):
        if series.empty:
            st.info("No backlog samples yet: they start with the first store-load message.")
        long = model.backlog_long(series)
        # naive UTC times: Vega reads them as given, so the axis shows UTC whatever the
        # browser's zone is (the page's clock is UTC everywhere)
        long["time"] = pd.to_datetime(long["time"], utc=True).dt.tz_localize(None)
        names = list(dict.fromkeys(["total", *long["series"].astype(str).tolist()]))
        chart = (
            alt.Chart(long)
            .mark_line(interpolate="step-after")
            .encode(
                x=alt.X("time:T", title="time (UTC)", axis=alt.Axis(format="%H:%M")),
                y=alt.Y("open_orders:Q", title="open orders"),
                color=alt.Color(
                    "series:N",
                    title=None,
                    scale=alt.Scale(
                        domain=names,
                        range=[KIND_COLOURS.get(n, "#6b7280") for n in names],
                    ),
                ),
                tooltip=[
                    alt.Tooltip("time:T", format="%H:%M:%S"),
                    "series:N",
                    "open_orders:Q",
                ],
            )
            .properties(height=300)
        )
        st.container(key="backlog_chart").altair_chart(chart, width="stretch")
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
            decisions,
            hide_index=True,
            width="stretch",
            height=320,
            column_config={
                "decided_at": st.column_config.DatetimeColumn("decided", format="HH:mm:ss"),
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
    st.container(key="order_lifecycle").dataframe(
        lifecycle,
        hide_index=True,
        width="stretch",
        column_config={"time": st.column_config.DatetimeColumn("time", format="HH:mm:ss.SSS")},
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
    st.container(key="sku_stock").dataframe(
        stock,
        hide_index=True,
        width="stretch",
        column_config={"updated_at": st.column_config.DatetimeColumn("updated", format="HH:mm:ss")},
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
        breaches,
        hide_index=True,
        width="stretch",
        column_config={
            "oldest_wait_s": st.column_config.NumberColumn("oldest wait (s)", format="%d"),
            "store_load_oldest_age_s": st.column_config.NumberColumn(
                "store-load oldest (s)", format="%d"
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
    show_stock(view)
    show_sla(view)


def main() -> None:
    """Static frame (title, sidebar) once per run; the fragment refreshes the rest."""
    st.set_page_config(page_title=TITLE, page_icon="📦", layout="wide")
    st.title(TITLE)
    with st.sidebar:
        st.subheader("Source")
        if FIXTURES_MODE:
            st.write("Fixture data (STOCKROUTE_DASHBOARD_FIXTURES=1)")
        else:
            st.write(f"Kafka at `{live_feed().settings.bootstrap}`")
            st.caption("Compacted topics from the beginning; order topics: last 6 hours.")
        st.caption(f"Refreshes every {REFRESH_S:g} s.")
    live_page()


main()
