#!/usr/bin/env bash
# Alert ingest across replicas, one command from a clean clone:
#
#   bench/replicas.sh
#
# Starts a throwaway PostgreSQL cluster on a loopback port (Debian's
# postgresql, installed with apt when missing; run as the postgres OS user
# when root; fsync on), then RUNS times, each on a fresh database:
#   (1) one infraai-server replica, driven by one wrk (THREADS threads,
#       CONNECTIONS connections, DURATION);
#   (3) three replicas on one database, each driven at once by its own wrk
#       (1 thread, CONNECTIONS/3 connections), so the same total load;
# every request one Alertmanager webhook (version 4) with a new fingerprint,
# answered 2xx only after PostgreSQL committed it. Prints the alerts/s of
# one replica and of three (summed), min / median over the runs, and the
# ratio of the medians. Builds infraai-server in release unless SERVER_BIN
# is set. Environment: RUNS (3), DURATION (8s), THREADS (2), CONNECTIONS (33).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bench="$root/bench"
# shellcheck source=bench/lib.sh
. "$bench/lib.sh"
DURATION=${DURATION:-8s}
CONNECTIONS=${CONNECTIONS:-33}
alert_load
server_bin=$(server_binary)
start_postgres 200

token=bench-webhook-token
started=""
start_replica() { # start_replica <database> <id>; sets $started to its base URL
  local port; port=$(free_port)
  INFRAAI_WEBHOOK_TOKEN=$token INFRAAI_OPERATOR_TOKEN=bench-operator RUST_LOG=error \
    "$server_bin" --listen "127.0.0.1:$port" --data-dir "$work/$2" --cloud simulated \
    --database-url "postgres://postgres@127.0.0.1:$pg_port/$1" --replica-id "$2" \
    >"$work/$2.out" 2>"$work/$2.log" &
  pids+=($!)
  started="http://127.0.0.1:$port"
  for _ in $(seq 150); do
    curl -fsS -o /dev/null "$started/readyz" 2>/dev/null && return 0
    sleep 0.2
  done
  log "replica $2 did not become ready"; exit 1
}
stop_replicas() {
  for p in "${pids[@]:1}"; do kill "$p" 2>/dev/null || true; done
  wait "${pids[@]:1}" 2>/dev/null || true
  pids=("${pids[0]}")
}
run_wrk() { # run_wrk <url> <run tag> <threads> <connections>
  BENCH_DIR="$bench" BENCH_RUN="$2" BENCH_TOKEN="$token" \
    wrk -t"$3" -c"$4" -d"$DURATION" --timeout 10s -s "$bench/server.lua" "$1" \
    | grep '^RESULT' || { log "wrk failed against $1"; exit 1; }
}

results="$work/results"
: >"$results"
for run in $(seq "$RUNS"); do
  db="bench_one_$run"
  as_pg "$pg/createdb" -h 127.0.0.1 -p "$pg_port" -U postgres "$db"
  start_replica "$db" "one-$run"; url=$started
  log "run $run/$RUNS: one replica"
  echo "one $(run_wrk "$url" "one$run" "$THREADS" "$CONNECTIONS")" | tee -a "$results" >&2
  stop_replicas

  db="bench_three_$run"
  as_pg "$pg/createdb" -h 127.0.0.1 -p "$pg_port" -U postgres "$db"
  urls=()
  for r in a b c; do start_replica "$db" "three-$run-$r"; urls+=("$started"); done
  log "run $run/$RUNS: three replicas"
  per=$(( CONNECTIONS / 3 ))
  wrks=()
  for i in 0 1 2; do
    run_wrk "${urls[$i]}" "three$run-$i" 1 "$per" >"$work/three-$run-$i.txt" &
    wrks+=($!)
  done
  wait "${wrks[@]}"
  python3 - "$work" "$run" <<'PY' | tee -a "$results" >&2
import re, sys
work, run = sys.argv[1:]
rows = [dict((k, float(v)) for k, v in re.findall(r"(\w+)=([\d.]+)", open(f"{work}/three-{run}-{i}.txt").read())) for i in range(3)]
print("three rps=%.1f p99_ms=%.3f errors=%d" % (sum(r["rps"] for r in rows), max(r["p99_ms"] for r in rows), sum(r["errors"] for r in rows)))
PY
  stop_replicas
done

python3 - "$results" "$pg_version" <<'PY'
import re, statistics, sys
results, pg_version = sys.argv[1:]
rows = {"one": [], "three": []}
for line in open(results):
    who, rest = line.split(" ", 1)
    rows[who].append({k: float(v) for k, v in re.findall(r"(\w+)=([\d.]+)", rest)})
print()
print("alert ingest on one PostgreSQL (%d runs each; min / median)" % len(rows["one"]))
print("%-34s %22s %22s %8s" % ("", "alerts/s", "p99 ms", "errors"))
for who, name in (("one", "one replica"), ("three", "three replicas (summed)")):
    r = rows[who]
    print("%-34s %10.0f / %9.0f %10.2f / %9.2f %8d" % (name,
        min(x["rps"] for x in r), statistics.median(x["rps"] for x in r),
        min(x["p99_ms"] for x in r), statistics.median(x["p99_ms"] for x in r),
        sum(x["errors"] for x in r)))
ratio = statistics.median(x["rps"] for x in rows["three"]) / statistics.median(x["rps"] for x in rows["one"])
print("ratio three / one (median alerts/s): %.2fx" % ratio)
print("postgresql: %s" % pg_version)
sys.exit(0 if all(x["errors"] == 0 for r in rows.values() for x in r) else 1)
PY
