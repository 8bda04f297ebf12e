"""Streamlit AppTest of the planner page, rendered from fixture data (no Kafka needed).

The page reads STOCKROUTE_DASHBOARD_FIXTURES when its script runs, so each test sets it with
monkeypatch before `AppTest.run()`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from dashboard import model
from dashboard.fixtures import FIXTURE_ORDER_ID, FIXTURE_SKU

APP = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"


@pytest.fixture
def app(monkeypatch: pytest.MonkeyPatch) -> AppTest:
    monkeypatch.setenv("STOCKROUTE_DASHBOARD_FIXTURES", "1")
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_the_page_renders_every_view_without_exceptions(app: AppTest) -> None:
    assert app.title[0].value == "Stockroute — planner view"
    assert [h.value for h in app.header] == [
        "Network overview",
        "Store load",
        "Backlog over time",
        "Order flow",
        "Dead letters",
        "Stock",
        "Backorders",
        "SLA",
    ]
    keys = {c.key for c in app.container}
    for key in (
        "network_overview",
        "store_load",
        "store_load_table",
        "store_load_map",
        "backlog",
        "backlog_chart",
        "latest_decisions",
        "sla_breaches",
        "dead_letters",
        "dead_letters_by_topic",
        "dead_letters_by_reason",
        "dead_letters_latest",
    ):
        assert key in keys, key
    assert not app.warning, "fixture mode must not complain about Kafka"


def test_the_network_overview_shows_every_metric_with_fixture_numbers(app: AppTest) -> None:
    metrics = {m.label: m.value for m in app.container(key="network_overview").metric}

    assert list(metrics) == [
        "Orders routed (1 h)",
        "In preparation",
        "Shipped (1 h)",
        "Late",
        "Routing rate (/min)",
        "Unroutable (1 h)",
        "Re-routed (1 h)",
    ]
    assert int(metrics["Orders routed (1 h)"].replace(",", "")) > 0
    assert int(metrics["Shipped (1 h)"].replace(",", "")) > 0
    assert float(metrics["Routing rate (/min)"]) > 0  # the unit is in the label
    assert metrics["Unroutable (1 h)"].endswith("%")
    # short values (units in the labels) on rows of 4 tiles: nothing to clip
    assert all(len(v) <= model.METRIC_VALUE_MAX_CHARS for v in metrics.values()), metrics


def test_the_store_load_table_lists_locations_most_saturated_first(app: AppTest) -> None:
    table = app.container(key="store_load_table").dataframe[0].value

    assert 10 <= len(table) <= 20
    for column in (
        "location_id",
        "kind",
        "open_orders",
        "open_units",
        "capacity_per_hour",
        "saturation",
        "backlog_saturation",
        "oldest_open_age_s",
    ):
        assert column in table.columns
    assert table["saturation"].is_monotonic_decreasing
    assert table["open_orders"].iloc[0] > 0


def _plotly(app: AppTest, key: str) -> tuple[dict, dict]:  # type: ignore[type-arg]
    children = app.container(key=key).children
    assert len(children) == 1
    element = next(iter(children.values())) if isinstance(children, dict) else children[0]
    assert element.type == "plotly_chart"
    return json.loads(element.proto.spec), json.loads(element.proto.config)


def test_the_backlog_chart_and_the_map_are_drawn(app: AppTest) -> None:
    chart, _ = _plotly(app, "backlog_chart")
    assert chart["data"][0]["name"] == "total"
    caption = " ".join(c.value for c in app.container(key="backlog").caption)
    assert "open orders" in caption and "peak" in caption


def test_the_backlog_time_axis_is_a_date_axis_that_never_repeats_a_label(app: AppTest) -> None:
    chart, _ = _plotly(app, "backlog_chart")
    xaxis = chart["layout"]["xaxis"]

    assert xaxis["type"] == "date"
    stops = {tuple(s["dtickrange"]): s["value"] for s in xaxis["tickformatstops"]}
    assert "%S" in stops[(1000, 60000)]  # ticks under a minute apart show seconds


def test_the_map_draws_country_outlines_offline_with_names_and_saturation(app: AppTest) -> None:
    spec, config = _plotly(app, "store_load_map")
    trace = spec["data"][0]
    geo = spec["layout"]["geo"]

    assert trace["type"] == "scattergeo"  # Plotly's built-in geo: no tiles, no token
    assert "mapbox" not in spec["layout"] and "map" not in spec["layout"]
    assert geo["showcountries"] and geo["showland"]
    # the outlines come from this server's static files, never from Plotly's CDN
    assert config["topojsonURL"] == "/app/static/"
    static = APP.parent / "static" / f"{geo['scope']}_{geo['resolution']}m.json"
    assert "countries" in json.loads(static.read_text())["objects"]
    # names on hover, colour by saturation on the green-to-red scale
    assert all(isinstance(name, str) and name for name in trace["text"])
    assert "%{text}" in trace["hovertemplate"]
    marker = trace["marker"]
    assert marker["colorscale"][0][1] == model.SATURATION_SCALE[0][1]  # green at 0
    assert marker["colorscale"][-1][1] == model.SATURATION_SCALE[-1][1]  # red at the top
    assert (marker["cmin"], marker["cmax"]) == (0.0, model.SATURATION_RED_AT)


def test_the_dead_letters_panel_counts_by_topic_and_reason_and_shows_raw_payloads(
    app: AppTest,
) -> None:
    by_topic = app.container(key="dead_letters_by_topic").dataframe[0].value
    by_reason = app.container(key="dead_letters_by_reason").dataframe[0].value
    latest = app.container(key="dead_letters_latest").dataframe[0].value

    assert list(by_topic.columns) == ["source_topic", "dead_letters"]
    assert {"web-orders", "pos-sales", "fulfilment-events"} <= set(by_topic["source_topic"])
    reasons = dict(zip(by_reason["reason_class"], by_reason["dead_letters"], strict=True))
    assert {
        "malformed JSON",
        "invalid WebOrder",
        "unknown location_id",
        "message key must be",
    } <= set(reasons)
    assert by_reason["dead_letters"].is_monotonic_decreasing
    assert by_topic["dead_letters"].sum() == by_reason["dead_letters"].sum()
    total = int(by_topic["dead_letters"].sum())
    assert any(f"**{total:,}** input messages refused" in m.value for m in app.markdown)

    assert len(latest) == min(total, 20)
    assert latest["rejected_at"].is_monotonic_decreasing  # newest first
    malformed = latest[latest["reason_class"] == "malformed JSON"]
    assert malformed["raw"].str.startswith('{"order_id": "ORD-900001"').any()
    assert latest.loc[latest["source_topic"] == "pos-sales", "key"].eq("–").all()  # no key


def test_no_table_cell_shows_none(app: AppTest) -> None:
    app.text_input(key="order_search").input(FIXTURE_ORDER_ID).run()
    app.text_input(key="sku_search").input(FIXTURE_SKU).run()

    assert not app.exception
    assert len(app.dataframe) >= 9
    for frame in app.dataframe:
        table = frame.value
        assert not table.isna().any().any(), table[table.isna().any(axis=1)]
        assert not table.astype(str).isin(["None", "nan", "NaT", "<NA>"]).any().any()


def test_searching_a_known_order_shows_its_lifecycle(app: AppTest) -> None:
    app.text_input(key="order_search").input(FIXTURE_ORDER_ID).run()

    assert not app.exception
    lifecycle = app.container(key="order_lifecycle").dataframe[0].value
    assert lifecycle["change"].iloc[0] == "routed"
    assert lifecycle["change"].iloc[-1] == "shipped"
    assert any(
        f"**{FIXTURE_ORDER_ID}** — current status: `shipped`" in m.value for m in app.markdown
    )


def test_searching_an_unknown_order_says_there_is_nothing(app: AppTest) -> None:
    app.text_input(key="order_search").input("ORD-NOPE").run()

    assert not app.exception
    assert any("No events for order ORD-NOPE" in i.value for i in app.info)


def test_searching_a_sku_shows_its_stock_per_location(app: AppTest) -> None:
    app.text_input(key="sku_search").input(FIXTURE_SKU).run()

    assert not app.exception
    stock = app.container(key="sku_stock").dataframe[0].value
    assert list(stock.columns[:3]) == ["location_id", "name", "kind"]
    assert {"on_hand", "reserved", "available"} <= set(stock.columns)
    assert len(stock) >= 10
    assert stock["available"].is_monotonic_decreasing


def test_the_sla_threshold_slider_changes_the_breaching_stores(app: AppTest) -> None:
    strict = app.container(key="sla_breaches").dataframe[0].value
    assert len(strict) > 0
    assert (strict["oldest_wait_s"] > 30 * 60).all()

    app.slider(key="sla_threshold_min").set_value(240).run()

    assert not app.exception
    assert "sla_breaches" not in {c.key for c in app.container}
    assert any("No shipment has waited longer than 240 min" in s.value for s in app.success)


def test_without_a_reachable_broker_the_page_says_so_and_still_renders(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from dashboard import source

    monkeypatch.delenv("STOCKROUTE_DASHBOARD_FIXTURES", raising=False)
    monkeypatch.setenv("KAFKA_BOOTSTRAP", "127.0.0.1:1")  # nothing listens on port 1
    at = AppTest.from_file(str(APP), default_timeout=60)
    try:
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        assert any("Kafka not reachable at 127.0.0.1:1" in w.value for w in at.warning)
        assert "Store load" in [h.value for h in at.header]
        assert any("No store-load published yet" in i.value for i in at.info)
        table = at.container(key="store_load_table").dataframe[0].value
        assert table.empty and "saturation" in table.columns
        assert any("No dead letters" in m.value for m in at.success)
    finally:
        source.stop_all()
        st.cache_resource.clear()  # the stopped feed must not serve a later live-mode test
