#!/usr/bin/env bash
# Where the alert path's time goes, one command from a clean clone:
#
#   bench/alert-breakdown.sh
#
# Same load as bench/alert-ingest.sh (wrk, one alert per request, every
# request a new label set), each target measured alone and the rounds
# interleaved, RUNS rounds of:
#   am      Alertmanager's POST /api/v2/alerts (memory);
#   disk    the server's webhook, SQLite on this disk (the durable case that
#           bench/alert-ingest.sh measures): each alert opens an incident,
#           committed and fsync'd before the 2xx;
#   tmpfs   the same with the data directory in /dev/shm: the same SQLite
#           work, but fsync returns at once. Not durable; it shows what the
#           disk costs;
#   noop    resolved alerts of fingerprints never seen: parsed, checked and
#           looked up by the store's writer, nothing to write. It shows the
#           HTTP path and a store round trip without the store's writes.
# Each server run starts a fresh server on a fresh data directory. Prints
# alerts/s and requests/s (min / median), p99, CPU per request and each
# median alert rate as a ratio of Alertmanager's. BATCH=N sends N alerts per
# request to both (Alertmanager's API takes an array, a webhook carries a
# group); CASES picks the server cases (default "disk tmpfs noop").
# Environment as bench/alert-ingest.sh: RUNS (3), DURATION (10s), THREADS
# (2), CONNECTIONS (32), ALERTMANAGER_BIN, SERVER_BIN.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bench="$root/bench"
# shellcheck source=bench/lib.sh
. "$bench/lib.sh"
alert_load
BATCH=${BATCH:-1}
CASES=${CASES:-disk tmpfs noop}
export BENCH_BATCH=$BATCH
[ -d /dev/shm ] || { log "/dev/shm is missing (needed for the tmpfs case)"; exit 1; }
server_bin=$(server_binary)
start_alertmanager
kill -STOP "$am_pid"
shm=$(mktemp -d /dev/shm/infraai-bench.XXXXXX)
trap 'rm -rf "$shm"; cleanup' EXIT

results="$work/results"
: >"$results"
measure_server() { # measure_server <case> <data dir> <run>
  start_server "$2"
  local state=firing
  [ "$1" = noop ] && state=resolved
  echo "$1 $(BENCH_STATE=$state run_wrk server.lua "http://127.0.0.1:$srv_port" "$1-$3" "$server_pid")" |
    tee -a "$results" >&2
  kill "$server_pid"
  wait "$server_pid" 2>/dev/null || true
  rm -rf "$2"
}
for run in $(seq "$RUNS"); do
  log "round $run/$RUNS"
  kill -CONT "$am_pid"
  echo "am $(run_wrk am.lua "http://127.0.0.1:$am_port" "$run" "$am_pid")" | tee -a "$results" >&2
  kill -STOP "$am_pid"
  for case in $CASES; do
    case $case in
      disk | noop) measure_server "$case" "$work/data" "$run" ;;
      tmpfs) measure_server tmpfs "$shm/data" "$run" ;;
      *) log "unknown case $case (disk, tmpfs, noop)"; exit 1 ;;
    esac
  done
done
kill -CONT "$am_pid"

python3 - "$results" "$am_version" "$BATCH" <<'PY'
import re, statistics, sys
results, am_version, batch = sys.argv[1:]
batch = int(batch)
rows = {}
for line in open(results):
    case, rest = line.split(" ", 1)
    rows.setdefault(case, []).append({k: float(v) for k, v in re.findall(r"(\w+)=([\d.]+)", rest)})
med = lambda case, key: statistics.median(r[key] for r in rows[case])
names = {
    "am": "Alertmanager POST /api/v2/alerts (memory)",
    "disk": "infraai, SQLite on disk (fsync'd, durable)",
    "tmpfs": "infraai, SQLite on tmpfs (not durable)",
    "noop": "infraai, nothing to write",
}
print()
print("where the alert path's time goes (%d interleaved rounds, %d alert(s) per request; min / median)" % (len(rows["am"]), batch))
print("%-44s %20s %20s %10s %20s %8s %8s" % ("", "alerts/s", "requests/s", "p99 ms", "CPU us/request", "ratio", "errors"))
for case, name in names.items():
    if case not in rows:
        continue
    print("%-44s %9.0f / %8.0f %9.0f / %8.0f %10.2f %9.0f / %8.0f %7.2fx %8d" % (
        name, batch * min(r["rps"] for r in rows[case]), batch * med(case, "rps"),
        min(r["rps"] for r in rows[case]), med(case, "rps"), med(case, "p99_ms"),
        min(r["cpu_us"] for r in rows[case]), med(case, "cpu_us"),
        med(case, "rps") / med("am", "rps"), sum(r["errors"] for r in rows[case])))
print("ratio: the case's median rate over Alertmanager's")
print("alertmanager: %s" % am_version)
sys.exit(0 if all(r["errors"] == 0 for case in rows for r in rows[case]) else 1)
PY
