#!/usr/bin/env bash
# Alert-ingest benchmark, one command from a clean clone:
#
#   bench/alert-ingest.sh
#
# On this machine, in one run, it measures
#   (a) Alertmanager's own POST /api/v2/alerts, one alert per request, every
#       request a label set never sent before;
#   (b) infraai-server's POST /ops/webhook/alertmanager with the same alerts
#       as Alertmanager webhooks (version 4), every request a new fingerprint,
#       each answered 2xx only after it is committed to the SQLite store
#       (WAL, synchronous=FULL: the commit's fsync has returned);
# with wrk (THREADS threads, CONNECTIONS connections, DURATION each), RUNS runs
# of each, and prints requests/s, p50/p99 latency and the CPU time each server
# spent per request (min and median over the runs) and the ratios of the
# medians. Then a storm of duplicates of one alert
# (must stay one incident, one decision), and the server's RSS idle, after
# the load, and at peak.
#
# Installs wrk and prometheus-alertmanager with apt when missing (as root).
# Builds infraai-server in release. The server runs with the simulated cloud
# (the alert path is the same; every new incident is decided as usual).
# Environment: RUNS (3), DURATION (10s), THREADS (2), CONNECTIONS (32),
# STORM_SECS (3), CARGO_TARGET_DIR (target), ALERTMANAGER_BIN, SERVER_BIN (a
# prebuilt infraai-server instead of building one).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bench="$root/bench"
# shellcheck source=bench/lib.sh
. "$bench/lib.sh"
alert_load
STORM_SECS=${STORM_SECS:-3}
server_bin=$(server_binary)

rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
hwm_kb() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }

# --- Alertmanager: in-memory alerts, no notifications sent ------------------
start_alertmanager

# --- infraai-server: SQLite store on this disk -------------------------------
data="$work/data"
start_server "$data"
sleep 1
rss_idle=$(rss_kb "$server_pid")

# --- storm: one alert, duplicated (first, on the fresh server) ---------------
log "storm: the same alert for ${STORM_SECS}s"
storm=$(BENCH_DIR="$bench" BENCH_DUPLICATE=1 BENCH_TOKEN="$token" \
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"${STORM_SECS}s" --timeout 10s -s "$bench/server.lua" \
  "http://127.0.0.1:$srv_port" | grep '^RESULT')
storm_incidents=""
for _ in $(seq 60); do # the one decision runs in the background
  storm_incidents=$(curl -fsS -H "Authorization: Bearer bench-operator" \
    "http://127.0.0.1:$srv_port/ops/alerts?resource=storm&limit=1000" |
    python3 -c 'import json,sys; i=json.load(sys.stdin)["incidents"]; print(len(i), sum(1 for x in i if x.get("decision")), i[0]["occurrences"] if i else 0)')
  case "$storm_incidents" in "1 1 "*) break ;; esac
  sleep 0.5
done
rss_storm=$(rss_kb "$server_pid")

results="$work/results"
: >"$results"
# Each server is measured alone: the other is stopped (SIGSTOP) meanwhile.
# Otherwise the infraai server, idle from ingest, decides the incidents of its
# previous run at full speed during Alertmanager's run and takes its CPU
# (Alertmanager alone kept ~10k req/s over three runs; next to the deciding
# server it fell to ~6k).
kill -STOP "$server_pid"
for run in $(seq "$RUNS"); do
  log "run $run/$RUNS: Alertmanager POST /api/v2/alerts"
  kill -CONT "$am_pid"
  echo "am $(run_wrk am.lua "http://127.0.0.1:$am_port" "$run" "$am_pid")" | tee -a "$results" >&2
  kill -STOP "$am_pid"
  log "run $run/$RUNS: infraai-server POST /ops/webhook/alertmanager"
  kill -CONT "$server_pid"
  echo "server $(run_wrk server.lua "http://127.0.0.1:$srv_port" "$run" "$server_pid")" | tee -a "$results" >&2
  kill -STOP "$server_pid"
done
kill -CONT "$am_pid" "$server_pid"
rss_load=$(rss_kb "$server_pid")
rss_peak=$(hwm_kb "$server_pid")
# The decisions of every new incident run behind the acknowledgements.
backlog_start=$(date +%s)
undecided=""
for _ in $(seq 450); do
  undecided=$(curl -fsS -H "Authorization: Bearer bench-operator" \
    "http://127.0.0.1:$srv_port/ops/alerts?status=new&limit=1000" |
    python3 -c 'import json,sys; print(len(json.load(sys.stdin)["incidents"]))')
  [ "$undecided" = 0 ] && break
  sleep 1
done
backlog_secs=$(( $(date +%s) - backlog_start ))

rss_end=$(rss_kb "$server_pid")
db_size=$(du -sk "$data" | cut -f1)

python3 - "$results" "$storm" "$storm_incidents" "$rss_idle" "$rss_load" "$rss_end" "$rss_peak" \
  "$am_version" "$db_size" "$rss_storm" "$backlog_secs" "$undecided" <<'PY'
import re, statistics, sys
results, storm, storm_inc, idle, load, end, peak, am_version, db, rss_storm, backlog, undecided = sys.argv[1:]
rows = {"am": [], "server": []}
for line in open(results):
    who, rest = line.split(" ", 1)
    rows[who].append({k: float(v) for k, v in re.findall(r"(\w+)=([\d.]+)", rest)})
def stat(who, key, f):
    return f(r[key] for r in rows[who])
print()
print("alert ingest, one alert per request (%d runs each; min / median)" % len(rows["am"]))
print("%-44s %20s %20s %20s %20s %8s" % ("", "requests/s", "p50 ms", "p99 ms", "CPU us/request", "errors"))
for who, name in (("am", "Alertmanager POST /api/v2/alerts (memory)"),
                  ("server", "infraai /ops/webhook/alertmanager (fsync)")):
    print("%-44s %9.0f / %8.0f %9.2f / %8.2f %9.2f / %8.2f %9.0f / %8.0f %8d" % (
        name,
        stat(who, "rps", min), stat(who, "rps", lambda x: statistics.median(list(x))),
        stat(who, "p50_ms", min), stat(who, "p50_ms", lambda x: statistics.median(list(x))),
        stat(who, "p99_ms", min), stat(who, "p99_ms", lambda x: statistics.median(list(x))),
        stat(who, "cpu_us", min), stat(who, "cpu_us", lambda x: statistics.median(list(x))),
        stat(who, "errors", sum)))
ratio = statistics.median(r["rps"] for r in rows["server"]) / statistics.median(r["rps"] for r in rows["am"])
print("ratio infraai / Alertmanager (median requests/s): %.2fx" % ratio)
cpu = statistics.median(r["cpu_us"] for r in rows["server"]) / statistics.median(r["cpu_us"] for r in rows["am"])
print("CPU per request, infraai / Alertmanager (medians): %.2fx (lower is leaner)" % cpu)
n, decided, occ = storm_inc.split()
print("storm: %s → incidents %s, decided %s, occurrences %s" % (storm.replace("RESULT ", ""), n, decided, occ))
print("server RSS: idle %.1f MB, after the storm %.1f MB, at the end of the load %.1f MB (peak %.1f MB), after deciding the backlog %.1f MB; data dir %.1f MB" % (
    int(idle) / 1024, int(rss_storm) / 1024, int(load) / 1024, int(peak) / 1024, int(end) / 1024, int(db) / 1024))
print("decision backlog after the load: drained in %s s (%s still undecided)" % (backlog, undecided))
print("alertmanager: %s" % am_version)
ok = n == "1" and decided == "1" and sum(r["errors"] for r in rows["server"]) == 0
sys.exit(0 if ok else 1)
PY
