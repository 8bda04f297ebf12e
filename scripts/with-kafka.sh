#!/usr/bin/env bash
# Run a command with a Kafka broker: the one KAFKA_BOOTSTRAP names, or a fresh local one on a
# private port that this script starts and always stops (even when the command fails).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
if [[ -n "${KAFKA_BOOTSTRAP:-}" ]]; then
  exec "$@"
fi
# a free port pair (the controller listens on PORT+1), so runs side by side never collide
PORT=${STOCKROUTE_TEST_KAFKA_PORT:-$("$BIN/python" - <<'PY'
import socket
for port in range(19092, 19992, 2):
    try:
        for p in (port, port + 1):
            with socket.socket() as s:
                s.bind(("127.0.0.1", p))
    except OSError:
        continue
    print(port)
    break
PY
)}
export KAFKA_BOOTSTRAP="127.0.0.1:${PORT}"
DATA_DIR=$(mktemp -d -t stockroute-kafka-XXXXXX)
cleanup() {
  "$BIN/python" -m tooling.kafka_local down --port "$PORT" --data-dir "$DATA_DIR" >/dev/null 2>&1 || true
  rm -rf "$DATA_DIR"
}
trap cleanup EXIT INT TERM
"$BIN/python" -m tooling.kafka_local up --port "$PORT" --data-dir "$DATA_DIR" --fresh
"$BIN/stockroute" topics >/dev/null
set +e
"$@"
rc=$?
set -e
exit $rc
