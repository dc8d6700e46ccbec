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
# The server's peak RSS (VmHWM) under the load is printed per case.
# Targets (#32): the disk case's ratio >= 1.0x with 1 alert per request and
# >= 1.5x with 50, peak RSS < 64 MB; printed as met/MISSED, and STRICT=1
# exits non-zero when one is missed. SMOKE=1 (CI): one 2 s round of the disk
# case.
# Environment as bench/alert-ingest.sh: RUNS (3), DURATION (10s), THREADS
# (2), CONNECTIONS (32), ALERTMANAGER_BIN, SERVER_BIN; STRICT (0), SMOKE (0).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bench="$root/bench"
# shellcheck source=bench/lib.sh
. "$bench/lib.sh"
if [ "${SMOKE:-0}" = 1 ]; then
  RUNS=${RUNS:-1}
  DURATION=${DURATION:-2s}
  CASES=${CASES:-disk}
fi
alert_load
BATCH=${BATCH:-1}
CASES=${CASES:-disk tmpfs noop}
STRICT=${STRICT:-0}
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
  local out
  out=$(BENCH_STATE=$state run_wrk server.lua "http://127.0.0.1:$srv_port" "$1-$3" "$server_pid")
  echo "$1 $out rss_peak_kb=$(awk '/^VmHWM/ {print $2}' "/proc/$server_pid/status")" |
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

python3 - "$results" "$am_version" "$BATCH" "$STRICT" <<'PY'
import re, statistics, sys
results, am_version, batch, strict = sys.argv[1:]
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
print("%-44s %20s %20s %10s %20s %8s %8s %9s" % ("", "alerts/s", "requests/s", "p99 ms", "CPU us/request", "ratio", "errors", "RSS MB"))
for case, name in names.items():
    if case not in rows:
        continue
    rss = max(r.get("rss_peak_kb", 0) for r in rows[case]) / 1024
    print("%-44s %9.0f / %8.0f %9.0f / %8.0f %10.2f %9.0f / %8.0f %7.2fx %8d %9s" % (
        name, batch * min(r["rps"] for r in rows[case]), batch * med(case, "rps"),
        min(r["rps"] for r in rows[case]), med(case, "rps"), med(case, "p99_ms"),
        min(r["cpu_us"] for r in rows[case]), med(case, "cpu_us"),
        med(case, "rps") / med("am", "rps"), sum(r["errors"] for r in rows[case]),
        "%.1f" % rss if case != "am" else ""))
print("ratio: the case's median rate over Alertmanager's; RSS: the server's peak (VmHWM) over the runs")
print("alertmanager: %s" % am_version)
missed = 0
if "disk" in rows:
    goal = 1.0 if batch == 1 else 1.5
    ratio = med("disk", "rps") / med("am", "rps")
    rss = max(r["rss_peak_kb"] for r in rows["disk"]) / 1024
    for what, ok in (("durable ingest >= %.1fx Alertmanager: %.2fx" % (goal, ratio), ratio >= goal),
                     ("peak RSS < 64 MB: %.1f MB" % rss, rss < 64)):
        print("target %s: %s" % (what, "met" if ok else "MISSED"))
        missed += not ok
errors = any(r["errors"] for case in rows for r in rows[case])
sys.exit(1 if errors or (strict == "1" and missed) else 0)
PY
