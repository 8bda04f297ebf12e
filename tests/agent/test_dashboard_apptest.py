"""Streamlit AppTest of the planner page, rendered from fixture data (no Kafka needed).

The page reads STOCKROUTE_DASHBOARD_FIXTURES when its script runs, so each test sets it with
monkeypatch before `AppTest.run()`.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

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
        "Stock",
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
        "Routing rate",
        "Unroutable",
        "Re-routed",
    ]
    assert int(metrics["Orders routed (1 h)"].replace(",", "")) > 0
    assert int(metrics["Shipped (1 h)"].replace(",", "")) > 0
    assert metrics["Routing rate"].endswith("/min")
    assert metrics["Unroutable"].endswith("%")


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


def test_the_backlog_chart_and_the_map_are_drawn(app: AppTest) -> None:
    chart = app.container(key="backlog_chart").children
    deck = app.container(key="store_load_map").children
    assert len(chart) == 1 and len(deck) == 1
    caption = " ".join(c.value for c in app.container(key="backlog").caption)
    assert "open orders" in caption and "peak" in caption


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
    finally:
        source.stop_all()
        st.cache_resource.clear()  # the stopped feed must not serve a later live-mode test
