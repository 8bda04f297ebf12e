"""streams/supervisor.py: a worker asking to be restarted is restarted; anything else ends it."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

from streams.app import RESTART_EXIT_CODE
from streams.supervisor import supervise, worker_command


def _child(script: str) -> list[str]:
    return [sys.executable, "-c", script]


def test_a_child_exiting_with_the_restart_code_is_started_again_until_it_exits_otherwise(
    tmp_path: Path,
) -> None:
    runs = tmp_path / "runs"
    script = (
        "import pathlib, sys\n"
        f"p = pathlib.Path({str(runs)!r})\n"
        "n = len(p.read_text()) if p.exists() else 0\n"
        "p.write_text('x' * (n + 1))\n"
        f"sys.exit({RESTART_EXIT_CODE} if n < 2 else 0)\n"
    )
    assert supervise(_child(script)) == 0
    assert runs.read_text() == "xxx"


def test_any_other_exit_code_is_returned_without_a_restart(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    script = f"import pathlib, sys; pathlib.Path({str(runs)!r}).write_text('x'); sys.exit(3)"
    assert supervise(_child(script)) == 3
    assert runs.read_text() == "x"


def test_sigterm_goes_to_the_child_and_the_signal_handlers_are_restored(tmp_path: Path) -> None:
    started = tmp_path / "started"
    script = (
        "import pathlib, sys, time\n"
        f"pathlib.Path({str(started)!r}).write_text('1')\n"
        "time.sleep(30)\n"
        "sys.exit(3)\n"  # not reached when the SIGTERM is forwarded
    )
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}

    def terminate_once_started() -> None:
        deadline = time.monotonic() + 20
        while not started.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGTERM)  # to the supervisor, i.e. this test process

    threading.Thread(target=terminate_once_started, daemon=True).start()
    assert supervise(_child(script)) == -signal.SIGTERM
    assert {s: signal.getsignal(s) for s in before} == before


def test_the_worker_command_runs_the_unsupervised_worker_process() -> None:
    assert worker_command(["--web-port", "1"]) == [
        sys.executable,
        "-m",
        "streams.cli",
        "worker-process",
        "--web-port",
        "1",
    ]


def test_a_restart_runs_the_restart_command_so_a_one_time_option_is_not_repeated(
    tmp_path: Path,
) -> None:
    runs = tmp_path / "runs"
    script = (
        "import pathlib, sys\n"
        f"p = pathlib.Path({str(runs)!r})\n"
        "text = p.read_text() if p.exists() else ''\n"
        "p.write_text(text + sys.argv[1])\n"
        f"sys.exit({RESTART_EXIT_CODE} if len(text) < 2 else 0)\n"
    )
    assert supervise([*_child(script), "R"], restart=[*_child(script), "n"]) == 0
    assert runs.read_text() == "Rnn"  # --reset-state once, plain restarts after
