#!/usr/bin/env bash
# `make demo`: the whole Stockroute system from one command, stopped cleanly by Ctrl-C.
#
#   broker (local KRaft, unless KAFKA_BOOTSTRAP names one) -> topics -> one worker (waits for
#   /health) -> the simulated retailer -> the planner dashboard on http://127.0.0.1:8501
#
# Every process it starts runs in its own process group; on Ctrl-C / SIGTERM / DEMO_DURATION
# those groups (and only those) are stopped, and the broker too if this script started it.
#
# Environment (all optional):
#   KAFKA_BOOTSTRAP        use this broker instead of starting a local one
#   DEMO_KAFKA_PORT        port of the local broker (default 9092)
#   DEMO_ARGS              options for `stockroute simulate` (default: --speed 60 --max-rate 500)
#   DEMO_DURATION          seconds to run once everything is up, then stop by itself (tests)
#   DEMO_FRESH=1           wipe the demo's state (logs, worker state) and use a new run id and
#                          topic prefix, so nothing of an earlier run shows
#   DEMO_DATA_DIR          logs and state of the demo (default .data/demo)
#   DEMO_WORKER_DIR        the worker's data dir (default .data/demo-worker)
#   DEMO_WORKER_PORT       the worker's web port (default 6066)
#   DEMO_DASHBOARD_HOST    (default 127.0.0.1)   DEMO_DASHBOARD_PORT (default 8501)
#   DEMO_WORKER_TIMEOUT    seconds to wait for the worker's /health (default 180)
#   STOCKROUTE_TOPIC_PREFIX / STOCKROUTE_APP_ID  when set, used as they are
#   DEMO_BACKORDERS=0      route with policy/routing.yaml as shipped (backorders off); by default
#                          the demo turns backorders on for web and app orders
#   STOCKROUTE_ROUTING_POLICY  a policy file of your own (used as it is)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=$ROOT/.venv/bin

DATA_DIR=${DEMO_DATA_DIR:-.data/demo}
WORKER_DIR=${DEMO_WORKER_DIR:-.data/demo-worker}
WORKER_PORT=${DEMO_WORKER_PORT:-6066}
DASH_HOST=${DEMO_DASHBOARD_HOST:-127.0.0.1}
DASH_PORT=${DEMO_DASHBOARD_PORT:-8501}
KAFKA_PORT=${DEMO_KAFKA_PORT:-9092}
WORKER_TIMEOUT=${DEMO_WORKER_TIMEOUT:-180}
DEMO_ARGS=${DEMO_ARGS:---speed 60 --max-rate 500}
DURATION=${DEMO_DURATION:-}

if [[ -t 1 ]]; then B=$'\e[1m'; G=$'\e[32m'; R=$'\e[31m'; N=$'\e[0m'; else B= G= R= N=; fi
say() { printf '%s[demo %s]%s %s\n' "$B" "$(date +%H:%M:%S)" "$N" "$*"; }
fail() { printf '%s[demo %s] error:%s %s\n' "$R" "$(date +%H:%M:%S)" "$N" "$*" >&2; }

if [[ ! -x $BIN/stockroute ]]; then
  fail "no $BIN/stockroute: run \`make demo\` (it creates the venv) or \`make venv\` first"
  exit 2
fi

# ---- state: run id, topic prefix, app id --------------------------------------------------
if [[ ${DEMO_FRESH:-0} == 1 ]]; then
  say "DEMO_FRESH=1: wiping $DATA_DIR and $WORKER_DIR"
  rm -rf "$DATA_DIR" "$WORKER_DIR"
fi
mkdir -p "$DATA_DIR"
STATE=$DATA_DIR/state.env
if [[ ! -f $STATE ]]; then
  RUN_ID=$("$BIN/python" -c 'import secrets; print(secrets.token_hex(4))')
  if [[ ${DEMO_FRESH:-0} == 1 ]]; then prefix="demo-$RUN_ID-"; app="stockroute-demo-$RUN_ID"
  else prefix=""; app="stockroute-demo"; fi
  printf 'RUN_ID=%q\nSAVED_PREFIX=%q\nSAVED_APP_ID=%q\n' "$RUN_ID" "$prefix" "$app" >"$STATE"
fi
# shellcheck disable=SC1090
source "$STATE"
export STOCKROUTE_TOPIC_PREFIX=${STOCKROUTE_TOPIC_PREFIX-$SAVED_PREFIX}
export STOCKROUTE_APP_ID=${STOCKROUTE_APP_ID:-$SAVED_APP_ID}

# ---- routing policy: policy/routing.yaml with backorders on for web and app orders -------------
# The shipped policy keeps backorders off (a line no location serves is unroutable, as before
# they existed); the demo turns them on for web and app orders, so the dashboard shows lines
# waiting for stock and the simulator sends preorders. DEMO_BACKORDERS=0, or a
# STOCKROUTE_ROUTING_POLICY of your own, runs the policy as it is.
if [[ -z ${STOCKROUTE_ROUTING_POLICY:-} && ${DEMO_BACKORDERS:-1} != 0 ]]; then
  DEMO_POLICY=$(cd "$DATA_DIR" && pwd)/routing-policy.yaml
  "$BIN/python" - "$ROOT/policy/routing.yaml" "$DEMO_POLICY" <<'PY'
import sys

import yaml

src, dst = sys.argv[1:3]
with open(src, encoding="utf-8") as fh:
    policy = yaml.safe_load(fh)
policy["backorder"]["channels"] = {"web": {"enabled": True}, "app": {"enabled": True}}
with open(dst, "w", encoding="utf-8") as fh:
    yaml.safe_dump(policy, fh, sort_keys=False)
PY
  export STOCKROUTE_ROUTING_POLICY=$DEMO_POLICY
fi

# ---- process bookkeeping ----------------------------------------------------------------------
declare -A PIDS=()        # name -> pid (= process group id: each child is a session leader)
STARTED_BROKER=0
STOPPING=0

start() { # start NAME CMD...: in its own session / process group, output to $DATA_DIR/NAME.log
  local name=$1; shift
  setsid "$@" >>"$DATA_DIR/$name.log" 2>&1 </dev/null &
  PIDS[$name]=$!
}

stop_group() { # stop_group NAME: TERM the group, KILL it after 20 s
  local name=$1 pid=${PIDS[$1]:-}
  [[ -n $pid ]] || return 0
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM -- "-$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
      kill -0 -- "-$pid" 2>/dev/null || break
      sleep 0.2
    done
    if kill -0 -- "-$pid" 2>/dev/null; then
      say "$name did not stop in 20 s: killing it"
      kill -KILL -- "-$pid" 2>/dev/null || true
    fi
  fi
  wait "$pid" 2>/dev/null || true
  unset "PIDS[$name]"
}

cleanup() {
  local rc=$?
  [[ $STOPPING == 1 ]] && return
  STOPPING=1
  trap '' INT TERM
  say "stopping ..."
  for name in simulator dashboard worker; do
    if [[ -n ${PIDS[$name]:-} ]]; then stop_group "$name"; say "  $name stopped"; fi
  done
  if [[ $STARTED_BROKER == 1 ]]; then
    "$BIN/stockroute" kafka down --port "$KAFKA_PORT" >>"$DATA_DIR/kafka.log" 2>&1 || true
    say "  kafka broker (port $KAFKA_PORT) stopped"
  fi
  say "stopped. Logs: $DATA_DIR/*.log"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

tail_log() { tail -n 25 "$DATA_DIR/$1.log" 2>/dev/null | sed 's/^/    /' >&2 || true; }

http_ok() { # http_ok URL: 0 when it answers 200
  "$BIN/python" - "$1" <<'PY' 2>/dev/null
import sys, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1], timeout=2) as r:
        sys.exit(0 if r.status == 200 else 1)
except Exception:
    sys.exit(1)
PY
}

wait_http() { # wait_http NAME URL TIMEOUT
  local name=$1 url=$2 timeout=$3 waited=0
  while ! http_ok "$url"; do
    if ! kill -0 "${PIDS[$name]}" 2>/dev/null; then
      fail "$name exited while starting; last lines of $DATA_DIR/$name.log:"; tail_log "$name"
      exit 1
    fi
    if ((waited >= timeout)); then
      fail "$name not ready at $url after ${timeout}s; last lines of $DATA_DIR/$name.log:"
      tail_log "$name"
      exit 1
    fi
    sleep 1; waited=$((waited + 1))
    if ((waited % 15 == 0)); then say "  ... still waiting for $name (${waited}s)"; fi
  done
}

# ---- 1. broker ----------------------------------------------------------------------------------
if [[ -n ${KAFKA_BOOTSTRAP:-} ]]; then
  say "using the Kafka broker at $KAFKA_BOOTSTRAP (KAFKA_BOOTSTRAP)"
else
  export KAFKA_BOOTSTRAP=127.0.0.1:$KAFKA_PORT
  if "$BIN/stockroute" kafka status --port "$KAFKA_PORT" >/dev/null 2>&1; then
    say "a local Kafka broker already runs on $KAFKA_BOOTSTRAP: using it (left running at exit)"
  else
    say "starting a local Kafka broker on $KAFKA_BOOTSTRAP (first run fetches the jars with Maven) ..."
    STARTED_BROKER=1
    if ! "$BIN/stockroute" kafka up --port "$KAFKA_PORT" >>"$DATA_DIR/kafka.log" 2>&1; then
      STARTED_BROKER=0
      fail "the broker did not start; last lines of $DATA_DIR/kafka.log:"; tail_log kafka
      exit 1
    fi
    say "  kafka ready"
  fi
fi

# ---- 2. topics ----------------------------------------------------------------------------------
say "creating topics (prefix '${STOCKROUTE_TOPIC_PREFIX}', app id $STOCKROUTE_APP_ID) ..."
if ! "$BIN/stockroute" topics >>"$DATA_DIR/topics.log" 2>&1; then
  fail "stockroute topics failed; last lines of $DATA_DIR/topics.log:"; tail_log topics
  exit 1
fi
say "  topics ok"

# ---- 3. worker ----------------------------------------------------------------------------------
say "starting the worker (data $WORKER_DIR, http://127.0.0.1:$WORKER_PORT/health) ..."
# A worker state from another broker (its data wiped, a new cluster) is moved aside and rebuilt
# by the worker itself (streams/state_check.py); its one line about it is echoed below.
WORKER_LOG_LINES=0
if [[ -f $DATA_DIR/worker.log ]]; then WORKER_LOG_LINES=$(wc -l <"$DATA_DIR/worker.log"); fi
start worker "$BIN/stockroute" worker --data-dir "$WORKER_DIR" --web-port "$WORKER_PORT" \
  --loglevel warning
wait_http worker "http://127.0.0.1:$WORKER_PORT/health" "$WORKER_TIMEOUT"
say "  worker healthy"
if found=$(tail -n +"$((WORKER_LOG_LINES + 1))" "$DATA_DIR/worker.log" | grep -m1 -o 'state check: .*'); then
  say "  $found"
fi

# ---- 4. simulator -------------------------------------------------------------------------------
# shellcheck disable=SC2086 # DEMO_ARGS is a list of options
set -- $DEMO_ARGS
if [[ ${DEMO_FRESH:-0} == 1 ]]; then set -- --run-id "$RUN_ID" "$@"; fi
say "starting the simulator: stockroute simulate $*"
start simulator "$BIN/stockroute" simulate "$@"

# ---- 5. dashboard -------------------------------------------------------------------------------
say "starting the dashboard on http://$DASH_HOST:$DASH_PORT ..."
start dashboard "$BIN/stockroute" dashboard --host "$DASH_HOST" --port "$DASH_PORT"
wait_http dashboard "http://$DASH_HOST:$DASH_PORT/_stcore/health" 90
say "  dashboard up"

echo
say "${G}Stockroute demo is running.${N}"
say "  Dashboard:  ${B}http://$DASH_HOST:$DASH_PORT${N}"
say "  Kafka:      $KAFKA_BOOTSTRAP   topic prefix: '${STOCKROUTE_TOPIC_PREFIX}'"
say "  Logs:       $DATA_DIR/{worker,simulator,dashboard,topics,kafka}.log"
say "  (the simulator sends its opening stock first: orders start to flow within a minute)"
if [[ -n $DURATION ]]; then
  say "  stopping by itself in ${DURATION}s (DEMO_DURATION)"
else
  say "  press Ctrl-C to stop everything"
fi
echo

# ---- 6. watch -----------------------------------------------------------------------------------
started=$SECONDS
sim_done=0
while :; do
  sleep 1 &
  wait $! || true
  for name in worker dashboard; do
    if ! kill -0 "${PIDS[$name]}" 2>/dev/null; then
      fail "$name exited unexpectedly; last lines of $DATA_DIR/$name.log:"; tail_log "$name"
      unset "PIDS[$name]"
      exit 1
    fi
  done
  if [[ $sim_done == 0 ]] && ! kill -0 "${PIDS[simulator]}" 2>/dev/null; then
    sim_rc=0; wait "${PIDS[simulator]}" || sim_rc=$?
    unset "PIDS[simulator]"
    sim_done=1
    if [[ $sim_rc != 0 ]]; then
      fail "the simulator failed (exit $sim_rc); last lines of $DATA_DIR/simulator.log:"
      tail_log simulator
      exit 1
    fi
    say "the simulator finished its run (see $DATA_DIR/simulator.log); the rest keeps running"
  fi
  if [[ -n $DURATION ]] && ((SECONDS - started >= DURATION)); then
    say "DEMO_DURATION=${DURATION}s reached"
    exit 0
  fi
done
