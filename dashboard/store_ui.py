"""What the store pages share: the data source, the publisher, the store picker, the status line.

One `LiveFeed` (dashboard.source, the planner's reader) per server process folds the store
app's topics into a `StoreState`; one publisher per process sends the app's messages. In
fixture mode (`STOCKROUTE_DASHBOARD_FIXTURES=1`: tests, offline demos) the state is built from
dashboard.store_fixtures and messages are recorded, not sent.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import streamlit as st

from dashboard import store
from dashboard.publish import KafkaPublisher, Publisher, PublishError, RecordingPublisher
from dashboard.source import FeedStatus, LiveFeed
from dashboard.store_fixtures import FIXTURE_STORE, build_store_state

FIXTURES_ENV = "STOCKROUTE_DASHBOARD_FIXTURES"
STORE_IDS_ENV = "STOCKROUTE_STORE_IDS"


def allowed_stores() -> frozenset[str]:
    """The locations this instance may act for (comma-separated ids); empty: every one."""
    raw = os.environ.get(STORE_IDS_ENV, "")
    return frozenset(part.strip() for part in raw.split(",") if part.strip())


def fixtures_mode() -> bool:
    return os.environ.get(FIXTURES_ENV, "") == "1"


def refresh_s() -> float:
    return max(1.0, float(os.environ.get("STOCKROUTE_DASHBOARD_REFRESH_S", "3")))


@st.cache_resource(show_spinner=False)
def fixture_store() -> tuple[store.StoreState, RecordingPublisher]:
    """Fixture mode: one state and one recorder per server process (tests reach them here)."""
    return build_store_state(), RecordingPublisher()


@st.cache_resource(show_spinner=False)
def live_store() -> tuple[store.StoreState, LiveFeed, KafkaPublisher]:
    """One reader of the store app's topics and one producer per server process."""
    state = store.StoreState()
    hours = float(os.environ.get("STOCKROUTE_STORE_HISTORY_HOURS", "72"))
    feed = LiveFeed(handles=store.STORE_HANDLES, sink=state, history_hours=hours).start()
    return state, feed, KafkaPublisher()


@dataclass(frozen=True)
class Source:
    state: store.StoreState
    status: FeedStatus | None
    publisher: Publisher
    now: datetime


def source() -> Source:
    if fixtures_mode():
        state, recorder = fixture_store()
        return Source(state, None, recorder, state.now())
    state, feed, producer = live_store()
    return Source(state, feed.status(), producer, state.now())


def show_status(src: Source) -> None:
    if src.status is None:
        st.caption(
            f"Fixture data ({FIXTURES_ENV}=1): actions are recorded, not sent; "
            "nothing confirms them."
        )
        return
    if not src.status.connected:
        st.warning(src.status.describe(), icon="⚠️")
    elif not src.status.caught_up:
        st.info(src.status.describe())
    else:
        st.caption(src.status.describe())
    if src.status.connected and src.status.missing_topics:
        st.warning("Topics not found on the broker yet: " + ", ".join(src.status.missing_topics))


def pick_store(src: Source, key: str) -> str | None:
    """The store selector (active locations); `?store=ID` in the URL preselects one."""
    options = store.active_locations(src.state)
    allowed = allowed_stores()
    if allowed:
        options = [(loc_id, label) for loc_id, label in options if loc_id in allowed]
    if not options:
        st.info(
            f"None of the stores this app serves ({STORE_IDS_ENV}: {', '.join(sorted(allowed))}) "
            "is an active location."
            if allowed
            else "No active location known yet (the `locations` topic)."
        )
        return None
    ids = [loc_id for loc_id, _ in options]
    labels = dict(options)
    wanted = st.query_params.get("store") or (FIXTURE_STORE if fixtures_mode() else None)
    index = ids.index(wanted) if wanted in ids else 0
    chosen = st.selectbox(
        "Store", ids, index=index, format_func=lambda i: labels.get(i, i), key=key
    )
    if chosen and st.query_params.get("store") != chosen:
        st.query_params["store"] = chosen
    return str(chosen) if chosen else None


def send(src: Source, handle: str, key: str, value: dict[str, Any]) -> bool:
    """Publish one message; False (and an error on the page) when Kafka did not take it."""
    try:
        src.publisher.send(handle, key, value)
    except PublishError as exc:
        st.error(str(exc))
        return False
    return True
