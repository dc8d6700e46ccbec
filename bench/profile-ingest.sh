#!/usr/bin/env bash
# A CPU profile of durable alert ingest (the disk case of
# bench/alert-breakdown.sh), as a flame graph:
#
#   bench/profile-ingest.sh            # writes $OUT (ingest-flame.svg) and prints the top frames
#
# Builds infraai-server with the `profiling` profile (release code with line
# tables) unless SERVER_BIN is set, starts it on a fresh SQLite store on this
# disk, drives it with wrk (bench/server.lua: every request a new alert, as
# bench/alert-breakdown.sh) and records it with `perf record --call-graph
# dwarf` for the middle of the load. The flame graph needs Brendan Gregg's
# FlameGraph scripts (FLAMEGRAPH_DIR with stackcollapse-perf.pl and
# flamegraph.pl); without them only the flat top is printed.
# Environment: BATCH (1), DURATION (12s), THREADS (2), CONNECTIONS (32),
# SECONDS_RECORDED (6), OUT (ingest-flame.svg), SERVER_BIN, FLAMEGRAPH_DIR.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bench="$root/bench"
# shellcheck source=bench/lib.sh
. "$bench/lib.sh"
RUNS=1
alert_load
DURATION=${DURATION:-12s}
export BENCH_BATCH=${BATCH:-1}
OUT=${OUT:-ingest-flame.svg}
need perf linux-perf
if [ -z "${SERVER_BIN:-}" ]; then
  log "building infraai-server (profile: profiling)"
  (cd "$root" && cargo build --profile profiling -q -p infraai-server)
  SERVER_BIN="${CARGO_TARGET_DIR:-$root/target}/profiling/infraai-server"
fi
server_bin=$SERVER_BIN
start_server "$work/data"
(BENCH_STATE=firing run_wrk server.lua "http://127.0.0.1:$srv_port" 1 "$server_pid" >"$work/wrk.out") &
wrk_job=$!
sleep 3
perf record -q -F 499 --call-graph dwarf,32768 -p "$server_pid" -o "$work/perf.data" \
  -- sleep "${SECONDS_RECORDED:-6}" 2>"$work/perf.log"
wait "$wrk_job"
log "load: $(cat "$work/wrk.out")"
perf report -i "$work/perf.data" --no-children --sort symbol --stdio 2>/dev/null >"$work/report" || true
grep -E '^ +[0-9]' "$work/report" | sed -e 's/  */ /g' -e 's/ - - *$//' | head -25 || true
if [ -n "${FLAMEGRAPH_DIR:-}" ]; then
  perf script -i "$work/perf.data" 2>/dev/null | "$FLAMEGRAPH_DIR/stackcollapse-perf.pl" >"$work/folded"
  "$FLAMEGRAPH_DIR/flamegraph.pl" --title "infraai-server: durable ingest, ${BENCH_BATCH} alert(s)/request" \
    "$work/folded" >"$OUT"
  cp "$work/folded" "${OUT%.svg}.folded"
  log "flame graph: $OUT (folded stacks: ${OUT%.svg}.folded)"
fi
