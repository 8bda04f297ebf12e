"""streams/logs.py: JSON lines with the message being processed, colour only on a terminal,
and the group-coordinator transient of a normal start lowered below WARNING."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator

import pytest

from streams import logs


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in handlers:
        root.addHandler(h)
    root.setLevel(level)


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def test_json_is_one_object_per_line_with_the_required_fields() -> None:
    out = io.StringIO()
    logs.configure("INFO", fmt="json", stream=out)
    log = logging.getLogger("stockroute.test")
    log.info("hello %s", "world")
    log.warning("two\nlines")
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed")
    records = [json.loads(line) for line in lines(out)]
    assert len(records) == 3  # the multi-line message and the traceback stay on one line each
    first = records[0]
    assert first["message"] == "hello world"
    assert first["level"] == "INFO" and first["logger"] == "stockroute.test"
    assert first["timestamp"].endswith("+00:00") and "T" in first["timestamp"]
    assert records[1]["message"] == "two\nlines"
    assert "ValueError: boom" in records[2]["exception"]
    assert "topic" not in first  # no message being processed


def test_json_carries_the_message_being_processed_per_task() -> None:
    out = io.StringIO()
    logs.configure("INFO", fmt="json", stream=out)
    log = logging.getLogger("stockroute.test")

    async def agent(topic: str, offset: int, order_id: str | None) -> None:
        logs.set_message(topic, 1, offset, order_id)
        await asyncio.sleep(0)  # the other task runs and sets its own message
        log.warning("in %s", topic)

    async def timer() -> None:
        await asyncio.sleep(0)
        log.warning("timer")

    async def main() -> None:
        await asyncio.gather(agent("web-orders", 7, "O-7"), agent("pos-sales", 9, None), timer())

    asyncio.run(main())
    by_msg = {r["message"]: r for r in map(json.loads, lines(out))}
    web = by_msg["in web-orders"]
    assert (web["topic"], web["partition"], web["offset"], web["order_id"]) == (
        "web-orders",
        1,
        7,
        "O-7",
    )
    assert by_msg["in pos-sales"]["offset"] == 9 and "order_id" not in by_msg["in pos-sales"]
    assert "topic" not in by_msg["timer"]  # a task of its own: no agent's message


def test_extra_fields_override_the_context() -> None:
    out = io.StringIO()
    logs.configure("INFO", fmt="json", stream=out)
    logging.getLogger("x").info("m", extra={"order_id": "O-9", "topic": "t", "offset": 3})
    (record,) = map(json.loads, lines(out))
    assert (record["order_id"], record["topic"], record["offset"]) == ("O-9", "t", 3)


def test_text_has_no_colour_codes_off_a_terminal_and_colours_on_one() -> None:
    plain, tty = io.StringIO(), Tty()
    logs.configure("INFO", fmt="text", stream=plain)
    logging.getLogger("stockroute.test").warning("careful")
    logs.configure("INFO", fmt="text", stream=tty)
    logging.getLogger("stockroute.test").warning("careful")
    assert "\x1b[" not in plain.getvalue()
    assert "[WARNING] stockroute.test: careful" in plain.getvalue()
    assert "\x1b[33mWARNING\x1b[0m" in tty.getvalue()


def test_text_shows_the_message_being_processed() -> None:
    out = io.StringIO()
    logs.configure("INFO", fmt="text", stream=out)

    async def agent() -> None:
        logs.set_message("web-orders", 2, 40, "O-1")
        logging.getLogger("a").warning("dead-letter")

    asyncio.run(agent())
    assert lines(out)[0].endswith("dead-letter (web-orders:2@40 order=O-1)")


def test_the_log_format_comes_from_the_environment() -> None:
    assert logs.log_format({}) == "text"
    assert logs.log_format({"STOCKROUTE_LOG_FORMAT": "JSON"}) == "json"
    with pytest.raises(ValueError, match="STOCKROUTE_LOG_FORMAT must be one of text, json"):
        logs.log_format({"STOCKROUTE_LOG_FORMAT": "xml"})


COORDINATOR = "Group Coordinator Request failed: [Error 15] GroupCoordinatorNotAvailableError"


def aiokafka_error(message: str) -> None:
    logging.getLogger("aiokafka.consumer.group_coordinator").error(message)


def test_the_coordinator_transient_at_start_is_not_an_error() -> None:
    out = io.StringIO()
    logs.configure("WARNING", fmt="json", stream=out)
    aiokafka_error(COORDINATOR)
    assert lines(out) == []  # lowered to INFO, below the configured level
    logs.configure("INFO", fmt="json", stream=out)
    aiokafka_error(COORDINATOR)
    (record,) = map(json.loads, lines(out))
    assert record["level"] == "INFO" and "GroupCoordinatorNotAvailable" in record["message"]


def test_other_errors_and_a_coordinator_missing_for_long_stay_errors() -> None:
    out = io.StringIO()
    handler = logs.configure("WARNING", fmt="json", stream=out)
    aiokafka_error("Unable connect to node with id 1")
    for f in handler.filters:
        assert isinstance(f, logs.TransientFilter)
        f.until = 0.0  # the grace period is over
    aiokafka_error(COORDINATOR)
    levels = [json.loads(line)["level"] for line in lines(out)]
    assert levels == ["ERROR", "ERROR"]


def test_a_busy_event_loop_timer_overlap_is_info_not_a_warning() -> None:
    out = io.StringIO()
    logs.configure("INFO", fmt="json", stream=out)
    logging.getLogger("mode.timers").warning(
        "Timer %s is overlapping (interval=%r runtime=%r)", "livelock", 2.5, 5.02
    )
    logging.getLogger("mode.timers").warning("something else")
    levels = [(r["level"], r["message"][:8]) for r in map(json.loads, lines(out))]
    assert levels == [("INFO", "Timer li"), ("WARNING", "somethin")]
