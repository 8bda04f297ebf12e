"""Plotly figures of the planner page: the store-load map and the backlog chart.

Pure figure builders (no Streamlit, no Kafka): the page passes them frames of dashboard.model
and draws what they return, and the unit tests check the figures' data and layout directly.

Why Plotly's geo and not a tile map: the machines the dashboard runs on often have no internet,
so nothing may be fetched at run time. A `Scattergeo` draws country outlines from a TopoJSON
file; Plotly.js would fetch that file from its CDN (its `topojsonURL`), so the files ship in
`dashboard/static/` and `plotly_config()` points Plotly at Streamlit's static file serving
(`/app/static/`, on when started by `stockroute dashboard`, see dashboard/serve.py). No mapbox,
no tile server, no token.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from dashboard.model import SATURATION_RED_AT, SATURATION_SCALE

STATIC_DIR = Path(__file__).resolve().parent / "static"
"""Streamlit serves this folder (next to the main script, dashboard/app.py) at /app/static/."""

EUROPE_BOUNDS = (-30.0, 60.0, 30.0, 75.0)
"""lon_min, lon_max, lat_min, lat_max drawn by the "europe" TopoJSON (europe_50m.json)."""


def geo_scope(points: Sequence[Mapping[str, Any]]) -> tuple[str, int]:
    """Plotly geo (scope, resolution) for the points: Europe at 1:50m when every point lies in
    it (the finer outlines), else the world at 1:110m. The TopoJSON file is
    `<scope>_<resolution>m.json` in STATIC_DIR."""
    lon0, lon1, lat0, lat1 = EUROPE_BOUNDS
    if points and all(
        lon0 <= float(p["lon"]) <= lon1 and lat0 <= float(p["lat"]) <= lat1 for p in points
    ):
        return "europe", 50
    return "world", 110


MAP_ASPECT = 1.7
"""Width / height the map's frame is filled to (the page's left column at 420 px high)."""


def map_ranges(
    points: Sequence[Mapping[str, Any]], aspect: float = MAP_ASPECT
) -> tuple[tuple[float, float], tuple[float, float]] | None:
    """(lon range, lat range) framing every point with a margin, widened to `aspect`.

    Plotly's `fitbounds` frames the points tightly and keeps the projection's proportions,
    which draws a narrow strip for a country taller than wide; these ranges fill the frame
    instead (Mercator: a degree of latitude spans sec(latitude) degrees of longitude)."""
    if not points:
        return None
    lons = [float(p["lon"]) for p in points]
    lats = [float(p["lat"]) for p in points]
    mid_lat = (min(lats) + max(lats)) / 2
    stretch = 1 / max(math.cos(math.radians(mid_lat)), 0.2)
    lat_span = max((max(lats) - min(lats)) * 1.2, 1.0)
    lon_span = max((max(lons) - min(lons)) * 1.2, 1.0)
    lon_span = max(lon_span, aspect * lat_span * stretch)
    lat_span = max(lat_span, lon_span / (aspect * stretch))
    mid_lon = (min(lons) + max(lons)) / 2
    lat_range = (max(mid_lat - lat_span / 2, -85.0), min(mid_lat + lat_span / 2, 85.0))
    return (mid_lon - lon_span / 2, mid_lon + lon_span / 2), lat_range


def topojson_file(scope: str, resolution: int) -> Path:
    """The file Plotly.js asks for (its getTopojsonName: scope, "_", resolution, "m")."""
    return STATIC_DIR / f"{scope.replace(' ', '-')}_{resolution}m.json"


def plotly_config(base_url_path: str = "") -> dict[str, Any]:
    """The `config` of every Plotly chart of the page: outlines from our own server."""
    base = "/" + base_url_path.strip("/") if base_url_path.strip("/") else ""
    return {
        "topojsonURL": f"{base}/app/static/",
        "displaylogo": False,
        "modeBarButtonsToRemove": ["lasso2d", "select2d"],
    }


def _colourscale() -> list[list[Any]]:
    return [[stop, colour] for stop, colour in SATURATION_SCALE]


def store_map(points: Sequence[Mapping[str, Any]], height: int = 420) -> go.Figure:
    """Locations on country outlines, coloured by saturation, sized by open orders.

    `points` are `dashboard.model.map_points` rows. Hovering a dot names the location; the
    most saturated are drawn last, on top of idle neighbours."""
    ordered = sorted(points, key=lambda p: float(p["saturation"]))
    scope, resolution = geo_scope(ordered)
    fig = go.Figure(
        go.Scattergeo(
            lon=[p["lon"] for p in ordered],
            lat=[p["lat"] for p in ordered],
            text=[p["name"] for p in ordered],
            customdata=[
                [p["location_id"], p["kind"], p["open_orders"], p["saturation"]] for p in ordered
            ],
            mode="markers",
            hovertemplate=(
                "<b>%{text}</b><br>%{customdata[0]} (%{customdata[1]})<br>"
                "open orders %{customdata[2]:,}<br>saturation %{customdata[3]:.2f}<extra></extra>"
            ),
            marker={
                "size": [p["size"] for p in ordered],
                "sizemode": "diameter",
                "color": [p["saturation"] for p in ordered],
                "colorscale": _colourscale(),
                "cmin": 0.0,
                "cmax": SATURATION_RED_AT,
                "opacity": 0.9,
                "line": {"width": 0.7, "color": "#374151"},
                "colorbar": {
                    "title": {"text": "saturation<br>(h queued)"},
                    "thickness": 12,
                    "len": 0.8,
                    "tickvals": [0, 0.25, 0.5, 0.75, 1.0],
                    "ticktext": ["0", "0.25", "0.5", "0.75", "≥ 1"],
                },
            },
            name="locations",
        )
    )
    ranges = map_ranges(ordered)
    if ranges is not None:
        fig.update_geos(lonaxis_range=list(ranges[0]), lataxis_range=list(ranges[1]))
    fig.update_geos(
        scope=scope,
        resolution=resolution,
        projection_type="mercator",
        showcountries=True,
        countrycolor="#6b7280",
        countrywidth=0.8,
        showcoastlines=True,
        coastlinecolor="#6b7280",
        showland=True,
        landcolor="#f3f4f6",
        showocean=True,
        oceancolor="#dbeafe",
        showlakes=False,
        showframe=False,
        bgcolor="rgba(0,0,0,0)",
    )
    fig.update_layout(height=height, margin={"l": 0, "r": 0, "t": 0, "b": 0}, showlegend=False)
    return fig


TIME_TICKFORMATSTOPS: tuple[tuple[tuple[int | None, int | None], str], ...] = (
    ((None, 1_000), "%H:%M:%S.%L"),
    ((1_000, 60_000), "%H:%M:%S"),
    ((60_000, 3 * 3_600_000), "%H:%M"),
    ((3 * 3_600_000, 86_400_000), "%d %b %H:%M"),
    ((86_400_000, None), "%d %b"),
)
"""Tick label format by the distance between ticks (Plotly's `dtick`, ms): seconds appear as
soon as ticks are less than a minute apart, so no two labels of the axis read the same."""


def backlog_chart(long: pd.DataFrame, colours: Mapping[str, str], height: int = 320) -> go.Figure:
    """Open orders over time, one step line per series ("total" first, then location kinds).

    `long` is `dashboard.model.backlog_long` with `time` as naive UTC timestamps (the page's
    clock is UTC everywhere, whatever the browser's zone)."""
    names = list(dict.fromkeys(["total", *long["series"].astype(str).tolist()]))
    fig = go.Figure()
    for name in names:
        sub = long[long["series"] == name]
        if sub.empty:
            continue
        fig.add_trace(
            go.Scatter(
                x=sub["time"],
                y=sub["open_orders"],
                name=name,
                mode="lines",
                line={
                    "shape": "hv",
                    "color": colours.get(name, "#6b7280"),
                    "width": 2.6 if name == "total" else 1.6,
                },
                hovertemplate=f"{name}: %{{y:,}} open orders<extra></extra>",
            )
        )
    fig.update_xaxes(
        type="date",
        title={"text": "time (UTC)"},
        tickformatstops=[
            {"dtickrange": list(rng), "value": fmt} for rng, fmt in TIME_TICKFORMATSTOPS
        ],
        hoverformat="%Y-%m-%d %H:%M:%S",
        nticks=10,
        showgrid=True,
    )
    fig.update_yaxes(title={"text": "open orders"}, rangemode="tozero", tickformat=",d")
    fig.update_layout(
        height=height,
        margin={"l": 10, "r": 10, "t": 10, "b": 10},
        hovermode="x unified",
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0},
    )
    return fig
