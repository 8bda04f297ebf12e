"""The monitoring files stay in step with the code: docker-compose's Prometheus scrapes the
worker's web port, and every metric the Grafana dashboard queries is one the worker serves."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from faust.sensors.prometheus import FaustMetrics
from prometheus_client import CollectorRegistry

from streams.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]


def served_sample_names() -> set[str]:
    registry = CollectorRegistry()
    Metrics(registry)
    FaustMetrics.create(registry, "stockroute_faust")  # what Metrics.install adds
    names = {"stockroute_consumer_lag"}  # collected at scrape time from the consumer
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"], "gauge": [""]}
    for family in registry.collect():
        for suffix in suffixes.get(family.type, [""]):
            names.add(family.name + suffix)
    return names


def test_compose_runs_prometheus_scraping_the_worker_web_port() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    worker = services["worker"]
    port = worker["command"][worker["command"].index("--web-port") + 1]
    # bound beyond loopback inside the compose network, or prometheus could not reach it
    assert worker["environment"]["STOCKROUTE_WEB_HOST"] == "0.0.0.0"
    prom = services["prometheus"]
    mount = next(v for v in prom["volumes"] if v.endswith("/etc/prometheus/prometheus.yml:ro"))
    config = yaml.safe_load((ROOT / mount.split(":")[0]).read_text())
    (job,) = config["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"][0]["targets"] == [f"worker:{port}"]


def test_every_metric_of_the_grafana_dashboard_is_served() -> None:
    dash = json.loads((ROOT / "docs" / "grafana-dashboard.json").read_text())
    queried = {
        name
        for panel in dash["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\bstockroute_[a-z_]+\b", target["expr"])
    }
    assert len(queried) >= 10
    assert queried - served_sample_names() == set()
