"""The worker supervisor: restart a worker process that exits asking to re-read in order.

Why it is part of the runtime, not of the CLI: a worker that finds input offsets it cannot
re-read in place exits on purpose with RESTART_EXIT_CODE (streams/app.py, Runtime.in_order);
starting a new process from the committed offsets is how those messages are processed in order
and none is lost. Without this loop that exit would stop the worker, so the reliability
guarantee depends on it. Signals are passed to the child, so Ctrl-C and SIGTERM stop it.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Sequence
from types import FrameType

__all__ = ["supervise", "supervise_worker", "worker_command"]


def worker_command(argv: Sequence[str]) -> list[str]:
    """The unsupervised worker process (`stockroute worker-process`) with the worker's options."""
    return [sys.executable, "-m", "streams.cli", "worker-process", *argv]


def supervise(command: Sequence[str], restart: Sequence[str] | None = None) -> int:
    """Run `command` until it exits with anything but RESTART_EXIT_CODE; return that code.
    A restart runs `restart` instead when given (a one-time option is not repeated).

    SIGTERM and SIGINT received meanwhile go to the running child (which then exits and is not
    restarted unless it asks to be); the previous handlers are restored on return."""
    # imported here: streams.app loads Faust, which the supervising process never needs
    from streams.app import RESTART_EXIT_CODE

    child: subprocess.Popen[bytes] | None = None

    def forward(signum: int, _frame: FrameType | None) -> None:
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        while True:
            child = subprocess.Popen(list(command))
            rc = child.wait()
            if rc != RESTART_EXIT_CODE:
                return rc
            command = restart if restart is not None else command
            print("stockroute worker: restarting the worker process", file=sys.stderr, flush=True)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def supervise_worker(argv: Sequence[str]) -> int:
    """`stockroute worker`: the worker process with `argv`, restarted whenever it asks to
    (without `--reset-state`: the state is reset once, not at every restart)."""
    again = [a for a in argv if a != "--reset-state"]
    return supervise(worker_command(argv), restart=worker_command(again))
