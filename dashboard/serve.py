"""Start the dashboard: `streamlit run dashboard/app.py` on 127.0.0.1 by default.

Why a launcher instead of documenting the streamlit command: the `stockroute dashboard`
console command needs one function to call, the defaults must be safe (loopback only,
headless, no usage statistics sent anywhere) and the Streamlit process must stop when its
parent is told to stop, so scripts and the end-to-end test can manage it by one pid.

The app's pages are declared here (`PAGES`, a plain table) and built with `st.navigation` by
dashboard/app.py, the entry point: the sidebar reads "Planner", "Store" and "Returns desk",
at `/`, `/Store` and `/Returns_desk`. Static file serving is on so the planner's map reads its
country outlines from `dashboard/static/` (`/app/static/`), never from the internet.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path
from types import FrameType
from typing import NamedTuple

APP = Path(__file__).resolve().parent / "app.py"
FIXTURES_ENV = "STOCKROUTE_DASHBOARD_FIXTURES"


class PageSpec(NamedTuple):
    """One page of the app: its sidebar title, its script (None: the planner, in app.py), its
    URL path and icon (Material Symbols, which Streamlit ships: no emoji font needed)."""

    title: str
    file: str | None
    url_path: str
    icon: str


PAGES: tuple[PageSpec, ...] = (
    PageSpec("Planner", None, "", ":material/monitoring:"),
    PageSpec("Store", "pages/1_Store.py", "Store", ":material/storefront:"),
    PageSpec("Returns desk", "pages/2_Returns_desk.py", "Returns_desk", ":material/undo:"),
)
"""The sidebar, in order; the first is the default page (at `/`)."""


def build_command(
    host: str = "127.0.0.1",
    port: int = 8501,
    extra: list[str] | None = None,
    python: str = sys.executable,
) -> list[str]:
    """The exact `streamlit run` command line (pure, for tests and for `--print`)."""
    return [
        python,
        "-m",
        "streamlit",
        "run",
        str(APP),
        "--server.address",
        host,
        "--server.port",
        str(port),
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        "--server.enableStaticServing",
        "true",
        *(extra or []),
    ]


ENVIRONMENT = """environment:
  KAFKA_BOOTSTRAP                 brokers (default 127.0.0.1:9092)
  KAFKA_SECURITY_PROTOCOL         PLAINTEXT (default), SASL_PLAINTEXT, SASL_SSL or SSL
  KAFKA_SASL_MECHANISM            SASL mechanism (default PLAIN)
  KAFKA_SASL_USERNAME/_PASSWORD   SASL credentials
  KAFKA_SSL_CAFILE/_CERTFILE/_KEYFILE  TLS trust and client certificate
  STOCKROUTE_TOPIC_PREFIX         prefix of every topic name (default empty)
  STOCKROUTE_DASHBOARD_REFRESH_S  seconds between refreshes (default 3)
  STOCKROUTE_STORE_IDS            the stores the Store page offers (default: every active store)
  STOCKROUTE_STORE_HISTORY_HOURS  how far back the store pages read (default 72)"""


def parser() -> argparse.ArgumentParser:
    """The options of `stockroute dashboard` (reusable by the CLI to embed them)."""
    p = argparse.ArgumentParser(
        prog="stockroute dashboard",
        description="Serve the dashboard (Streamlit): the Planner page reading Kafka's output "
        "topics, and the store app's Store and Returns desk pages.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=ENVIRONMENT,
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8501, help="port to serve on (default 8501)")
    p.add_argument(
        "--fixtures",
        action="store_true",
        help=f"show built-in fixture data instead of Kafka (sets {FIXTURES_ENV}=1)",
    )
    p.add_argument(
        "--print",
        action="store_true",
        help="print the command instead of running it (default: off)",
    )
    p.add_argument("streamlit_args", nargs=argparse.REMAINDER, help="passed on to streamlit run")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run Streamlit in a child process until it exits or we are told to stop; its exit code."""
    args = parser().parse_args(argv)
    extra = [a for a in args.streamlit_args if a != "--"]
    cmd = build_command(args.host, args.port, extra)
    if args.print:
        print(" ".join(cmd))
        return 0
    env = dict(os.environ)
    env.setdefault("STREAMLIT_BROWSER_GATHER_USAGE_STATS", "false")
    if args.fixtures:
        env[FIXTURES_ENV] = "1"
    # the repo root on the path, so `dashboard` and `streams` import without an install
    root = str(APP.parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    proc = subprocess.Popen(cmd, env=env)

    def forward(signum: int, _frame: FrameType | None) -> None:
        if proc.poll() is None:
            proc.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        while True:
            try:
                return proc.wait()
            except KeyboardInterrupt:  # pragma: no cover - SIGINT already forwarded
                continue
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


if __name__ == "__main__":
    raise SystemExit(main())
