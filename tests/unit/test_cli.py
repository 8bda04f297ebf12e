"""The `stockroute` command as a user meets it: help for every command (options with their
defaults, the environment), the internal command unlisted, and every input error as one clear
line with exit code 2, never a traceback (`locations load` naming every bad record and
publishing nothing then)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest

from streams import cli


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """main(argv) -> (exit code, stdout, stderr), whether main returns or argparse exits."""
    try:
        rc = cli.main(list(argv))
    except SystemExit as exc:
        rc = exc.code if isinstance(exc.code, int) else 1
    out = capsys.readouterr()
    return rc, out.out, out.err


def one_line_error(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def location(location_id: str = "ST-1", **over: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "location_id": location_id,
        "kind": "store",
        "name": f"Store {location_id}",
        "lat": 48.85,
        "lon": 2.35,
        "ship_from_store": True,
        "capacity_per_hour": 10,
        "max_backlog": 20,
    }
    row.update(over)
    return row


class Published:
    """Stands in for Kafka: the admin check and the producer; records what was sent."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sent: list[tuple[str, bytes]] = []
        self.values: list[bytes] = []
        self.connected = 0
        published = self

        class Admin:
            async def close(self) -> None:
                return None

        async def admin(kafka: Any) -> Admin:
            published.connected += 1
            return Admin()

        class Producer:
            def __init__(self, **kw: Any) -> None:
                pass

            async def start(self) -> None:
                published.connected += 1

            async def send(self, topic: str, key: bytes, value: bytes) -> None:
                published.sent.append((topic, key))
                published.values.append(value)

            async def flush(self) -> None:
                return None

            async def stop(self) -> None:
                return None

        import aiokafka

        monkeypatch.setattr(cli, "_admin", admin)
        monkeypatch.setattr(aiokafka, "AIOKafkaProducer", Producer)


@pytest.fixture
def kafka(monkeypatch: pytest.MonkeyPatch) -> Published:
    return Published(monkeypatch)


# ---- help ----------------------------------------------------------------------------------


def test_bare_stockroute_prints_the_help(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = run(capsys)
    assert rc == 0, err
    assert out.startswith("usage: stockroute")
    for cmd in ("kafka", "topics", "locations", "worker", "schemas", "simulate", "dashboard"):
        assert f"\n    {cmd}" in out, cmd
    assert "KAFKA_BOOTSTRAP" in out


def test_the_internal_worker_process_command_is_not_listed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    rc, out, _ = run(capsys, "--help")
    assert rc == 0 and "worker-process" not in out
    rc, _, err = run(capsys, "frobnicate")
    assert rc == 2
    line = one_line_error(err)
    assert "invalid choice: 'frobnicate'" in line and "worker-process" not in line


def _subparsers(p: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in p._actions:  # argparse keeps its sub-parsers here only
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("no sub-commands")


def test_every_option_of_every_command_documents_its_default() -> None:
    from sim.runner import build_parser as sim_parser

    parsers = {f"stockroute {n}": p for n, p in _subparsers(cli.build_parser()).items()}
    parsers["stockroute simulate"] = sim_parser()
    undocumented = []
    for name, p in parsers.items():
        if name.endswith("worker-process") or name.endswith("dashboard"):
            continue  # internal; the dashboard owns its parser (dashboard/serve.py)
        for action in p._actions:
            if not action.option_strings or action.dest == "help":
                continue
            if "default" not in (action.help or ""):
                undocumented.append(f"{name} {action.option_strings[0]}")
    assert undocumented == []


@pytest.mark.parametrize(
    ("argv", "must_mention"),
    [
        (
            ["worker"],
            [
                "--web-port",
                "STOCKROUTE_WEB_PORT",
                "6066",
                "STOCKROUTE_DATA_DIR",
                "STOCKROUTE_LOG_FORMAT",
                "KAFKA_BOOTSTRAP",
                "--loglevel",
            ],
        ),
        (["topics"], ["KAFKA_BOOTSTRAP", "STOCKROUTE_TOPIC_PREFIX", "STOCKROUTE_APP_ID"]),
        (["locations"], ["JSON lines", "nothing is", "KAFKA_BOOTSTRAP"]),
        (["kafka"], ["--port", "default: 9092", "--sasl", "--fresh"]),
        (["simulate"], ["--speed", "default 60.0", "KAFKA_BOOTSTRAP"]),
    ],
)
def test_help_shows_options_defaults_and_environment(
    capsys: pytest.CaptureFixture[str], argv: list[str], must_mention: list[str]
) -> None:
    rc, out, _ = run(capsys, *argv, "--help")
    assert rc == 0
    text = " ".join(out.split())
    missing = [m for m in must_mention if m not in text]
    assert missing == [], out


# ---- usage and settings errors -------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["worker", "--web-port", "x"], "invalid int value: 'x'"),
        (["worker", "--loglevel", "loud"], "invalid choice: 'loud'"),
        (["locations", "load"], "required: file"),
        (["locations", "unload", "f.json"], "invalid choice: 'unload'"),
        (["kafka", "sideways"], "invalid choice: 'sideways'"),
        (["simulate", "--speed", "fast"], "invalid float value: 'fast'"),
        (["simulate", "--speed", "0"], "--speed must be > 0"),
    ],
)
def test_a_usage_error_is_one_line_and_exit_code_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], needle: str
) -> None:
    rc, _, err = run(capsys, *argv)
    assert rc == 2
    assert needle in one_line_error(err)


@pytest.mark.parametrize(
    ("var", "value", "needle"),
    [
        ("STOCKROUTE_WEB_PORT", "http", "invalid setting"),
        ("STOCKROUTE_DEDUPE_DAYS", "a week", "invalid setting"),
        ("STOCKROUTE_LOG_FORMAT", "xml", "STOCKROUTE_LOG_FORMAT must be one of text, json"),
    ],
)
def test_a_bad_worker_setting_is_one_line_before_any_process_starts(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    var: str,
    value: str,
    needle: str,
) -> None:
    import streams.supervisor

    def never(argv: Any) -> int:
        raise AssertionError("a worker process was started")

    monkeypatch.setattr(streams.supervisor, "supervise_worker", never)
    monkeypatch.setenv(var, value)
    rc, _, err = run(capsys, "worker")
    assert rc == 2
    assert needle in one_line_error(err)


# ---- locations load ------------------------------------------------------------------------


def test_locations_load_publishes_every_valid_location(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, kafka: Published
) -> None:
    f = tmp_path / "locations.json"
    f.write_text(json.dumps([location("ST-1"), location("WH-1", kind="warehouse")]))
    rc, out, err = run(capsys, "locations", "load", str(f))
    assert rc == 0, err
    assert [k for _, k in kafka.sent] == [b"ST-1", b"WH-1"]
    assert "published 2 locations" in out


def test_locations_load_reads_json_lines(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, kafka: Published
) -> None:
    f = tmp_path / "locations.jsonl"
    f.write_text("\n".join(json.dumps(location(f"ST-{i}")) for i in range(3)) + "\n\n")
    rc, _, err = run(capsys, "locations", "load", str(f))
    assert rc == 0, err
    assert len(kafka.sent) == 3


def test_a_missing_file_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, kafka: Published
) -> None:
    rc, _, err = run(capsys, "locations", "load", str(tmp_path / "nope.json"))
    assert rc == 2
    assert one_line_error(err) == f"stockroute: {tmp_path / 'nope.json'}: no such file"
    assert kafka.connected == 0


def test_a_directory_or_binary_file_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, kafka: Published
) -> None:
    rc, _, err = run(capsys, "locations", "load", str(tmp_path))
    assert rc == 2 and "is a directory" in one_line_error(err)
    f = tmp_path / "bin.json"
    f.write_bytes(b"\xff\xfe\x00[")
    rc, _, err = run(capsys, "locations", "load", str(f))
    assert rc == 2 and "not UTF-8" in one_line_error(err)
    assert kafka.connected == 0


def test_broken_json_is_one_line_with_its_position(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, kafka: Published
) -> None:
    f = tmp_path / "broken.json"
    f.write_text('[\n  {"location_id": "ST-1",\n  "kind": "store"\n')
    rc, _, err = run(capsys, "locations", "load", str(f))
    assert rc == 2
    line = one_line_error(err)
    assert "malformed JSON at line" in line and str(f) in line
    assert kafka.sent == [] and kafka.connected == 0


def test_every_bad_record_is_reported_with_its_index_and_nothing_is_published(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, kafka: Published
) -> None:
    f = tmp_path / "locations.json"
    rows = [
        location("ST-0"),
        location("ST-1", lat=123.0),
        location("ST-2"),
        location("ST-3", kind="castle"),
        42,
    ]
    f.write_text(json.dumps(rows))
    rc, _, err = run(capsys, "locations", "load", str(f))
    assert rc == 2
    lines = err.strip().splitlines()
    assert "Traceback" not in err
    assert len(lines) == 4, err
    assert "location #1: lat" in lines[0]
    assert "location #3: kind" in lines[1]
    assert "location #4" in lines[2]
    assert lines[3].endswith("3 of 5 locations are invalid; nothing was published")
    assert kafka.sent == [] and kafka.connected == 0


def test_bad_calendars_are_each_rejected_with_their_reason(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, kafka: Published
) -> None:
    hours = {"mon": ["09:00-20:00"]}
    good = {"tz": "Europe/Paris", "opening": hours, "preparation": {"mon": ["09:30-19:00"]}}
    rows = [
        location("ST-0", calendar=good),
        location("ST-1", calendar={"tz": "Europe/Pariss", "opening": hours}),
        location("ST-2", calendar={"tz": "UTC", "opening": {"tue": ["10:00-09:00"]}}),
        location(
            "ST-3", calendar={"tz": "UTC", "preparation": {"sat": ["09:00-12:00", "11:30-13:00"]}}
        ),
        location("ST-4", calendar={"tz": "UTC", "opening": {"mon": ["9h-18h"]}}),
        location("ST-5", calendar={"tz": "Europe", "opening": hours}),  # a folder of zones
    ]
    f = tmp_path / "locations.json"
    f.write_text(json.dumps(rows))
    rc, _, err = run(capsys, "locations", "load", str(f))
    assert rc == 2
    lines = err.strip().splitlines()
    assert "Traceback" not in err and len(lines) == 6, err
    assert "location #1: calendar" in lines[0] and "unknown time zone 'Europe/Pariss'" in lines[0]
    assert (
        "location #2" in lines[1] and "opening.tue: 10:00-09:00: end is not after start" in lines[1]
    )
    assert (
        "location #3" in lines[2]
        and "preparation.sat: intervals 09:00-12:00 and 11:30-13:00 overlap" in lines[2]
    )
    assert "location #4: calendar.opening.mon.0" in lines[3]
    assert "location #5: calendar" in lines[4] and "unknown time zone 'Europe'" in lines[4]
    assert lines[5].endswith("5 of 6 locations are invalid; nothing was published")
    assert kafka.sent == [] and kafka.connected == 0


def test_a_location_with_a_calendar_is_published_with_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, kafka: Published
) -> None:
    cal = {
        "tz": "Europe/Paris",
        "opening": {"mon": ["09:00-20:00"]},
        "closed_dates": ["2026-12-25"],
    }
    f = tmp_path / "locations.json"
    f.write_text(json.dumps([location("ST-0", calendar=cal)]))
    rc, _, err = run(capsys, "locations", "load", str(f))
    assert rc == 0, err
    assert json.loads(kafka.values[0])["calendar"] == {**cal, "preparation": None}


def test_json_lines_report_every_bad_line_malformed_or_invalid(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, kafka: Published
) -> None:
    f = tmp_path / "locations.jsonl"
    f.write_text(
        json.dumps(location("ST-0"))
        + "\n{not json\n"
        + json.dumps(location("ST-2", capacity_per_hour=-1))
        + "\n"
    )
    rc, _, err = run(capsys, "locations", "load", str(f))
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 3, err
    assert "location #1 (line 2): malformed JSON" in lines[0]
    assert "location #2 (line 3): capacity_per_hour" in lines[1]
    assert "2 of 3 locations are invalid" in lines[2]
    assert kafka.sent == []


def test_an_empty_file_publishes_nothing_and_says_so(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, kafka: Published
) -> None:
    f = tmp_path / "empty.json"
    f.write_text("[]")
    rc, _, err = run(capsys, "locations", "load", str(f))
    assert rc == 2 and "no locations" in one_line_error(err)
    assert kafka.connected == 0


def test_the_dashboard_help_documents_its_environment() -> None:
    """`stockroute dashboard` owns its parser (dashboard/serve.py): it lists the same
    connection variables as the other commands, and its own."""
    from dashboard.serve import parser

    text = parser().format_help()
    for var in ("KAFKA_BOOTSTRAP", "KAFKA_SECURITY_PROTOCOL", "STOCKROUTE_TOPIC_PREFIX"):
        assert var in text
    assert "STOCKROUTE_STORE_IDS" in text and "(default: off)" in text
