#!/usr/bin/env bash
# Run a command with a Kafka broker: the one KAFKA_BOOTSTRAP names, or a fresh local one on a
# private port that this script starts and always stops (even when the command fails).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
if [[ -n "${KAFKA_BOOTSTRAP:-}" ]]; then
  exec "$@"
fi
PORT=${STOCKROUTE_TEST_KAFKA_PORT:-19092}
export KAFKA_BOOTSTRAP="127.0.0.1:${PORT}"
cleanup() { "$BIN/python" -m streams.kafka_local down --port "$PORT" >/dev/null 2>&1 || true; }
trap cleanup EXIT INT TERM
"$BIN/python" -m streams.kafka_local up --port "$PORT" --fresh
"$BIN/stockroute" topics >/dev/null
set +e
"$@"
rc=$?
set -e
exit $rc
