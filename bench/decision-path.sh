#!/usr/bin/env bash
# The decision path without an LLM, one command from a clean clone:
#
#   bench/decision-path.sh             # RATE=100 alerts/s, DURATION=30s, RUNS=3
#   SMOKE=1 bench/decision-path.sh     # CI: one run of 3 s
#
# Target: alert acknowledged → decision recorded → approval request sent to
# the chat channel in < 5 ms p99, at 100 alerts/s sustained.
#
# Per run, on a fresh data directory (SQLite, the default store): a mock
# Telegram Bot API (bench/decision_path.py, Python's ThreadingHTTPServer on a
# loopback port: getMe, getUpdates with no updates, sendMessage,
# editMessageText, … answered like the Bot API; each sendMessage kept with
# the monotonic time its request arrived), the release infraai-server
# (`--cloud simulated`, rule-based policy, no LLM; Telegram on the mock,
# long polling), and one planned and applied deployment (POST
# /generate-graph, POST /execute: the standard goal's `api`, a gce_instance
# e2-medium). Then a Python sender posts one Alertmanager webhook per alert
# to POST /ops/webhook/alertmanager, RATE a second for DURATION on one
# persistent HTTP/1.1 connection (paced on a fixed schedule, one request at
# a time): "CPU high on api", each alert its own fingerprint (a new
# incident) and its own metric label, which the approval request shows. The
# rule policy proposes a scale-up, and earned autonomy (not yet earned)
# sends it to a human: the incident is `pending` and its approval request
# goes to Telegram. WARMUP alerts (100) go first and are not counted.
#
# Each alert's latency is the arrival of its approval request at the mock
# (matched by the incident id the webhook's answer names, which the message
# carries) minus the moment the sender read the webhook's 2xx (the alert is
# durable then, and the decision is made in the background). Both are
# time.monotonic(), one clock for every process. It prints per run the
# alerts sent, acknowledged and with an approval request, missing ones,
# p50 / p99 / max of that latency and the webhook's own response time (p50 /
# p99), then the min and median of the runs' p50 and p99, and whether the
# median p99 meets the target.
#
# TMPFS=1 puts the data directory in /dev/shm: SQLite does the same work
# but fsync returns at once (not durable); it shows what the disk's syncs
# cost on this path.
#
# Exits non-zero when an alert got no approval request within TIMEOUT (10 s
# after the last alert) or a request failed; STRICT=1 also when the target
# is missed.
#
# Environment: RATE (100 alerts/s), DURATION (30s; SMOKE=1: 3s), RUNS (3;
# SMOKE=1: 1), WARMUP (100 alerts), TIMEOUT (10 s), TARGET_MS (5), SMOKE
# (0), STRICT (0), TMPFS (0), SERVER_BIN (built in release when unset), KEEP=1 keeps the
# work directory (server logs, samples, the stores unless TMPFS=1), SERVER_LOG (RUST_LOG of the server; error).
# As root it installs curl and python3 when missing.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bench="$root/bench"
# shellcheck source=bench/lib.sh
. "$bench/lib.sh"

if [ "${SMOKE:-0}" = 1 ]; then
  DURATION=${DURATION:-3s}
  RUNS=${RUNS:-1}
fi
RATE=${RATE:-100}
DURATION=${DURATION:-30s}
RUNS=${RUNS:-3}
WARMUP=${WARMUP:-100}
TIMEOUT=${TIMEOUT:-10}
TARGET_MS=${TARGET_MS:-5}
STRICT=${STRICT:-0}
TMPFS=${TMPFS:-0}
SERVER_LOG=${SERVER_LOG:-error}
need curl curl
need python3 python3
shm=""
if [ "$TMPFS" = 1 ]; then
  [ -d /dev/shm ] || { log "/dev/shm is missing (TMPFS=1)"; exit 1; }
  shm=$(mktemp -d /dev/shm/infraai-decision-path.XXXXXX)
  trap 'rm -rf "$shm"; cleanup' EXIT
fi
if [ "${KEEP:-0}" = 1 ]; then
  trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; [ -z "$shm" ] || rm -rf "$shm"; log "kept $work"' EXIT
fi

server_bin=$(server_binary)
seconds=${DURATION%s}
operator_token=bench-operator
webhook_token=bench-webhook-token
helper="$bench/decision_path.py"

stop() { # stop <pid>...
  for p in "$@"; do kill "$p" 2>/dev/null || true; done
  for p in "$@"; do wait "$p" 2>/dev/null || true; done
}

# Plans the standard goal and applies it on the simulated cloud: the
# deployment whose `api` the alerts are about.
deploy() { # deploy <api url>
  local planned run_id status
  planned=$(curl -fsS -H "Authorization: Bearer $operator_token" -H 'Content-Type: application/json' \
    -d '{"goal": "a backend API for 10k users under $100/month"}' "$1/generate-graph") ||
    { log "POST /generate-graph failed"; exit 1; }
  run_id=$(echo "$planned" | python3 -c 'import json, sys; print(json.load(sys.stdin)["run_id"])')
  curl -fsS -o /dev/null -H "Authorization: Bearer $operator_token" -H 'Content-Type: application/json' \
    -d "{\"run_id\": \"$run_id\", \"dry_run\": false}" "$1/execute" || { log "POST /execute failed"; exit 1; }
  for _ in $(seq 100); do
    status=$(curl -fsS -H "Authorization: Bearer $operator_token" "$1/runs/$run_id/status" |
      python3 -c 'import json, sys; d = json.load(sys.stdin); print(d["status"], d["phase"])')
    case $status in
      "completed verified") return 0 ;;
      running*) sleep 0.1 ;;
      *) log "the deployment ended $status"; exit 1 ;;
    esac
  done
  log "the deployment did not finish"; exit 1
}

outs=()
for run in $(seq "$RUNS"); do
  dir="$work/run-$run"
  data="${shm:-$dir}/data-$run"
  mkdir -p "$dir"
  mock_port=$(free_port)
  python3 "$helper" mock "$mock_port" >"$dir/mock.log" 2>&1 &
  mock_pid=$!
  pids+=("$mock_pid")
  wait_url "http://127.0.0.1:$mock_port/_count" "the mock Telegram Bot API"
  srv_port=$(free_port)
  INFRAAI_WEBHOOK_TOKEN=$webhook_token INFRAAI_OPERATOR_TOKEN=$operator_token \
    INFRAAI_TELEGRAM_BOT_TOKEN=1000001:bench-token INFRAAI_TELEGRAM_CHAT_ID=-1001 \
    INFRAAI_TELEGRAM_API_BASE="http://127.0.0.1:$mock_port" INFRAAI_TELEGRAM_APPROVERS=42 \
    RUST_LOG=$SERVER_LOG \
    "$server_bin" --listen "127.0.0.1:$srv_port" --data-dir "$data" --cloud simulated \
    >"$dir/server.out" 2>"$dir/server.log" &
  server_pid=$!
  pids+=("$server_pid")
  api="http://127.0.0.1:$srv_port"
  wait_url "$api/healthz" infraai-server
  deploy "$api"
  log "run $run/$RUNS: warm-up, $WARMUP alerts (load average $(cut -d' ' -f1-3 /proc/loadavg))"
  python3 "$helper" send "$api" "$webhook_token" "http://127.0.0.1:$mock_port" "$RATE" \
    "$(python3 -c "print($WARMUP / $RATE)")" "w$run" "$TIMEOUT" "$dir/warmup.json" ||
    { tail -20 "$dir/server.log" >&2; log "the warm-up failed"; exit 1; }
  log "run $run/$RUNS: $RATE alerts/s for ${seconds}s"
  python3 "$helper" send "$api" "$webhook_token" "http://127.0.0.1:$mock_port" "$RATE" \
    "$seconds" "$run" "$TIMEOUT" "$dir/result.json" ||
    { tail -20 "$dir/server.log" >&2; log "the sender failed"; exit 1; }
  outs+=("$dir/result.json")
  if ! kill -0 "$server_pid" 2>/dev/null; then
    tail -20 "$dir/server.log" >&2; log "the server (pid $server_pid) is gone"; exit 1
  fi
  stop "$server_pid" "$mock_pid"
  if [ -s "$dir/server.log" ]; then
    log "run $run: the server logged $(wc -l <"$dir/server.log") line(s) at $SERVER_LOG; the first:"
    head -5 "$dir/server.log" >&2
  fi
  if [ "${KEEP:-0}" = 1 ] && [ -z "$shm" ]; then :; else rm -rf "$data"; fi
done

python3 "$helper" report "$STRICT" "$TARGET_MS" "$RATE" "${outs[@]}"
