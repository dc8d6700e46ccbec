#!/usr/bin/env bash
# The operator API over HTTP with a large store, one command from a clean
# clone:
#
#   bench/api-at-scale.sh              # STORES=sqlite,postgres RUNS=3 DURATION=10s
#   SMOKE=1 bench/api-at-scale.sh      # CI: 2,000 incidents, 20,000 audit records, SQLite, 2s
#
# For each store of STORES it seeds a fresh store with INCIDENTS incidents
# (100,000: a realistic mix of statuses, about 4 % pending) and AUDIT audit
# records (1,000,000) with infraai-store's `seed_store` example (target: under
# 60 s), starts the release infraai-server on it (`--cloud simulated`, the
# operator token, and INFRAAI_DATABASE_URL for PostgreSQL), then RUNS times:
#
#   view     GET  /ops/alerts/{id}            random seeded incidents (any status)
#   list     GET  /ops/alerts?status=pending&limit=50
#   list-none GET /ops/alerts?status=blocked&limit=50   (no incident matches
#                                             while autonomy runs: the worst case)
#   metrics  GET  /metrics
#   approve  POST /ops/alerts/{id}/approve    each request a different pending incident
#   reject   POST /ops/alerts/{id}/reject     each request a different pending incident
#   stop     POST /ops/autonomy/stop          } CYCLES times, one after the other
#   resume   POST /ops/autonomy/resume        }
#
# The first five with wrk (bench/api.lua; THREADS threads, CONNECTIONS
# connections, DURATION each; /metrics with METRICS_CONNECTIONS, one
# scraper by default), each once the server is idle again; approve and reject each get their own slice
# of the seeded pending incidents (30 % of them over all runs; a thread stops
# once its slice is sent), so the rest stays pending for the list and for
# STOP/RESUME (STOP sets one row and leaves them pending; RESUME returns the
# blocked ones, none here, to pending). STOP and RESUME
# must alternate, so a small Python client sends them on one connection and
# times each. Prints a table: store, route, requests, p50 and p99 (the median
# of the runs' p50 and p99, and the worst run's p99; STOP/RESUME: percentiles
# of every cycle), the target and whether it is met. Targets: approve,
# reject, stop, resume, view < 10 ms p99; list, list-none < 20 ms; metrics < 50 ms;
# seed < 60 s.
#
# Exits non-zero when a request failed (or a seed); STRICT=1 also when a
# target is missed.
#
# Environment: STORES (sqlite,postgres), INCIDENTS (100000), AUDIT (1000000),
# RUNS (3), DURATION (10s), CYCLES (5 STOP/RESUME cycles per run), THREADS
# (1), CONNECTIONS (4), METRICS_CONNECTIONS (1), SMOKE (0), STRICT (0), SERVER_BIN and SEED_BIN (built
# in release when unset), KEEP=1 keeps the work directory (stores, logs).
# As root it installs wrk, curl, python3 and (for postgres) Debian's
# postgresql when missing; the PostgreSQL cluster is a throwaway one on a
# loopback port, run as the postgres OS user, fsync on.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bench="$root/bench"
# shellcheck source=bench/lib.sh
. "$bench/lib.sh"

if [ "${SMOKE:-0}" = 1 ]; then
  INCIDENTS=${INCIDENTS:-2000}
  AUDIT=${AUDIT:-20000}
  STORES=${STORES:-sqlite}
  RUNS=${RUNS:-1}
  DURATION=${DURATION:-2s}
  CYCLES=${CYCLES:-3}
fi
INCIDENTS=${INCIDENTS:-100000}
AUDIT=${AUDIT:-1000000}
STORES=${STORES:-sqlite,postgres}
RUNS=${RUNS:-3}
DURATION=${DURATION:-10s}
CYCLES=${CYCLES:-5}
THREADS=${THREADS:-1}
CONNECTIONS=${CONNECTIONS:-4}
METRICS_CONNECTIONS=${METRICS_CONNECTIONS:-1}
STRICT=${STRICT:-0}
need wrk wrk
need curl curl
need python3 python3
operator_token=bench-operator
# KEEP=1: stop the processes (SIGINT: PostgreSQL's fast shutdown) but keep the directory.
if [ "${KEEP:-0}" = 1 ]; then trap 'for p in "${pids[@]}"; do kill -INT "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; log "kept $work"' EXIT; fi

server_bin=$(server_binary)
if [ -n "${SEED_BIN:-}" ]; then
  seed_bin=$SEED_BIN
else
  log "building the seed_store example (release)"
  (cd "$root" && cargo build --release -q -p infraai-store --features postgres --example seed_store)
  seed_bin="${CARGO_TARGET_DIR:-$root/target}/release/examples/seed_store"
fi

# --- PostgreSQL, when asked for ----------------------------------------------
pg_port=""
pg_pid=""
start_pg_db() { # the cluster (bench/lib.sh) and the benchmark's database
  start_postgres 100
  as_pg "$pg/createdb" -h 127.0.0.1 -p "$pg_port" -U postgres bench_scale
}

# --- one store ----------------------------------------------------------------
results="$work/results"
: >"$results"
failed=0

seed() { # seed <store> <target>; appends the seed line to results
  local out
  log "$1: seeding $INCIDENTS incidents and $AUDIT audit records"
  if ! out=$("$seed_bin" "$2" --incidents "$INCIDENTS" --audit "$AUDIT" --ids-dir "$work/$1/ids" \
    2>"$work/$1/seed.log"); then
    cat "$work/$1/seed.log" >&2
    log "$1: the seed failed"
    exit 1
  fi
  cat "$work/$1/seed.log" >&2
  echo "$out" >&2
  echo "$1 seed $(echo "$out" | grep '^SEED' | sed 's/^SEED //')" >>"$results"
}

start_api() { # start_api <store> [database url]; sets api, api_pid
  local port t0
  port=$(free_port)
  t0=$(date +%s.%N)
  env INFRAAI_OPERATOR_TOKEN=$operator_token INFRAAI_WEBHOOK_TOKEN=bench-webhook-token \
    INFRAAI_APPROVAL_TIMEOUT_SECS=86400 RUST_LOG=error ${2:+INFRAAI_DATABASE_URL=$2} \
    "$server_bin" --listen "127.0.0.1:$port" --data-dir "$work/$1/data" --cloud simulated \
    >"$work/$1/server.out" 2>"$work/$1/server.log" &
  api_pid=$!
  pids+=("$api_pid")
  api="http://127.0.0.1:$port"
  for _ in $(seq 600); do
    curl -fsS -o /dev/null "$api/readyz" 2>/dev/null && break
    kill -0 "$api_pid" 2>/dev/null || { cat "$work/$1/server.log" >&2; log "$1: the server exited"; exit 1; }
    sleep 0.1
  done
  curl -fsS -o /dev/null "$api/readyz" || { log "$1: the server is not ready"; exit 1; }
  log "$1: server ready in $(python3 -c "import time; print('%.1f' % (time.time() - $t0))") s (pid $api_pid)"
}

# Waits (up to 5 s) until the server is idle: what an earlier route left
# running (a slow request wrk gave up on, background executions) would
# otherwise be measured as the next route's latency.
settle() {
  local a b
  if ! kill -0 "$api_pid" 2>/dev/null; then
    tail -20 "$work"/*/server.log >&2 || true
    log "the server (pid $api_pid) is gone"
    exit 1
  fi
  for _ in $(seq 25); do
    a=$(cpu_ticks "$api_pid"); sleep 0.2; b=$(cpu_ticks "$api_pid")
    [ $(( b - a )) -le $(( hz / 50 )) ] && return 0
  done
}

wrk_route() { # wrk_route <store> <route> <run> <mode> [path or ids file] (CONNS overrides CONNECTIONS)
  local out threads=$THREADS conns=${CONNS:-$CONNECTIONS}
  settle
  [ "$conns" -lt "$threads" ] && threads=$conns
  out=$(BENCH_DIR="$bench" BENCH_TOKEN=$operator_token BENCH_MODE=$4 BENCH_THREADS=$threads \
    BENCH_PATH="${5:-}" BENCH_IDS="${5:-}" \
    wrk -t"$threads" -c"$conns" -d"$DURATION" --timeout 10s -s "$bench/api.lua" "$api" \
    2>>"$work/$1/wrk.err" | grep '^RESULT') || { log "wrk failed on $2"; exit 1; }
  echo "$1 $2 run=$3 ${out#RESULT }" | tee -a "$results" >&2
}

stop_resume() { # stop_resume <store> <run>: CYCLES of STOP then RESUME
  settle
  python3 - "$api" "$operator_token" "$CYCLES" <<'PY' | sed "s/^/$1 /; s/ run=0/ run=$2/" | tee -a "$results" >&2
import http.client, json, sys, time, urllib.parse
api, token, cycles = sys.argv[1], sys.argv[2], int(sys.argv[3])
u = urllib.parse.urlparse(api)
conn = http.client.HTTPConnection(u.hostname, u.port, timeout=600)
headers = {"Authorization": "Bearer " + token, "Content-Type": "application/json"}
samples = {"stop": [], "resume": []}
errors = {"stop": 0, "resume": 0}
affected = []
for _ in range(cycles):
    for route, body in (("stop", '{"reason":"bench"}'), ("resume", "{}")):
        t0 = time.perf_counter()
        conn.request("POST", "/ops/autonomy/" + route, body=body, headers=headers)
        r = conn.getresponse()
        data = r.read()
        samples[route].append((time.perf_counter() - t0) * 1000)
        if r.status != 200:
            errors[route] += 1
            print("%s: HTTP %d %s" % (route, r.status, data[:200]), file=sys.stderr)
        elif route == "stop":
            affected.append(json.loads(data).get("message", ""))
for route in ("stop", "resume"):
    s = samples[route]
    print("%s run=0 requests=%d errors=%d samples_ms=%s" % (
        route, len(s), errors[route], ",".join("%.3f" % x for x in s)))
print("# %s" % (affected[-1] if affected else ""), file=sys.stderr)
PY
}

# The server's own timing of each store operation over the whole
# measurement (every route; from its /metrics histogram
# infraai_store_op_duration_seconds, p50/p99 interpolated in the buckets):
# where a route's time goes.
store_ops() { # store_ops <store>
  python3 - "$1" "$work/$1/metrics.txt" <<'PY' >&2 || true
import re, sys
store, path = sys.argv[1:]
hist = {}
for line in open(path):
    m = re.match(r'infraai_store_op_duration_seconds_bucket\{(.*)\} (\d+)', line)
    if m:
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m[1]))
        hist.setdefault((labels["op"], labels["result"]), []).append((float(labels["le"]), int(m[2])))
def q(buckets, p):
    total = buckets[-1][1]
    rank, lo, below = total * p, 0.0, 0
    for le, n in buckets:
        if n >= rank:
            if le == float("inf"):
                return lo
            return lo + (le - lo) * (rank - below) / max(n - below, 1)
        lo, below = le, n
    return lo
print("%s: store operations (all routes): count, p50 / p99 ms" % store)
for (op, result), b in sorted(hist.items(), key=lambda kv: -kv[1][-1][1]):
    if b[-1][1] >= 100:
        print("  %-28s %-8s %8d %7.2f / %7.2f" % (op, result, b[-1][1], 1000 * q(b, .5), 1000 * q(b, .99)))
PY
}

measure() { # measure <store>
  local store=$1 ids="$work/$1/ids" pending n per
  pending=$(wc -l <"$ids/pending.txt")
  per=$(( pending * 3 / 10 / RUNS ))
  log "$store: $pending pending incidents; approve and reject take $per each per run"
  log "$store: warm-up"
  DURATION=2s wrk_route "$store" warmup-view 0 view "$ids/incidents.txt" >/dev/null 2>&1
  DURATION=2s wrk_route "$store" warmup-list 0 get "/ops/alerts?status=pending&limit=50" >/dev/null 2>&1
  sed -i '/ warmup-/d' "$results"
  for run in $(seq "$RUNS"); do
    log "$store: run $run/$RUNS"
    n=$(( (run - 1) * per ))
    sed -n "$(( n + 1 )),$(( n + per ))p" "$ids/pending.txt" >"$ids/approve-$run.txt"
    sed -n "$(( RUNS * per + n + 1 )),$(( RUNS * per + n + per ))p" "$ids/pending.txt" >"$ids/reject-$run.txt"
    wrk_route "$store" view "$run" view "$ids/incidents.txt"
    wrk_route "$store" list "$run" get "/ops/alerts?status=pending&limit=50"
    wrk_route "$store" list-none "$run" get "/ops/alerts?status=blocked&limit=50"
    CONNS=$METRICS_CONNECTIONS wrk_route "$store" metrics "$run" get "/metrics"
    if [ "$per" -gt 0 ]; then
      wrk_route "$store" approve "$run" approve "$ids/approve-$run.txt"
      wrk_route "$store" reject "$run" reject "$ids/reject-$run.txt"
    fi
    stop_resume "$store" "$run"
  done
}

IFS=',' read -ra stores <<<"$STORES"
for store in "${stores[@]}"; do
  mkdir -p "$work/$store/data"
  case $store in
    sqlite)
      seed sqlite "$work/sqlite/data/infraai.db"
      start_api sqlite
      ;;
    postgres)
      [ -n "$pg_port" ] || start_pg_db
      url="postgres://postgres@127.0.0.1:$pg_port/bench_scale"
      seed postgres "$url"
      start_api postgres "$url"
      ;;
    *) log "unknown store $store (sqlite, postgres)"; exit 1 ;;
  esac
  echo "$store rss_kb_start=$(awk '/VmRSS/ {print $2}' "/proc/$api_pid/status")" >>"$work/rss"
  measure "$store"
  if [ -s "$work/$store/wrk.err" ]; then head -5 "$work/$store/wrk.err" >&2; fi
  curl -fsS -H "Authorization: Bearer $operator_token" "$api/metrics" >"$work/$store/metrics.txt" || true
  store_ops "$store"
  kill "$api_pid"; wait "$api_pid" 2>/dev/null || true
done

# PostgreSQL's fast shutdown (SIGTERM would wait for clients).
if [ -n "$pg_pid" ]; then kill -INT "$pg_pid" 2>/dev/null || true; wait "$pg_pid" 2>/dev/null || true; fi

python3 - "$results" "$STRICT" "$INCIDENTS" "$AUDIT" "${pg_version:-}" <<'PY' || failed=1
import re, statistics, sys
results, strict, incidents, audit, pg_version = sys.argv[1:]
targets = {"seed": 60000, "approve": 10, "reject": 10, "stop": 10, "resume": 10,
           "view": 10, "list": 20, "list-none": 20, "metrics": 50}
names = {
    "seed": "seed (s)",
    "approve": "POST /ops/alerts/{id}/approve",
    "reject": "POST /ops/alerts/{id}/reject",
    "stop": "POST /ops/autonomy/stop",
    "resume": "POST /ops/autonomy/resume",
    "view": "GET /ops/alerts/{id}",
    "list": "GET /ops/alerts?status=pending&limit=50",
    "list-none": "GET /ops/alerts?status=blocked&limit=50",
    "metrics": "GET /metrics",
}
rows = {}
for line in open(results):
    store, route, rest = line.split(" ", 2)
    kv = dict(re.findall(r"(\w+)=([^\s]+)", rest))
    rows.setdefault((store, route), []).append(kv)

def pct(xs, p):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = (len(xs) - 1) * p / 100
    f = int(k)
    c = min(f + 1, len(xs) - 1)
    return xs[f] + (xs[c] - xs[f]) * (k - f)

print()
print("operator API at scale: %s incidents, %s audit records (p50 / p99 in ms; wrk routes: median of runs, worst run's p99 in brackets)" % (incidents, audit))
print("%-9s %-40s %8s %9s %20s %9s %6s %7s" % ("store", "route", "requests", "p50", "p99", "target", "errors", "result"))
bad = False
missed = False
for store in dict.fromkeys(s for s, _ in rows):
    for route in targets:
        runs = rows.get((store, route))
        if not runs:
            continue
        if route == "seed":
            secs = float(runs[0]["seconds"])
            ok = secs * 1000 < targets[route]
            missed |= not ok
            print("%-9s %-40s %8s %9s %20s %9s %6s %7s" % (store, names[route], runs[0]["incidents"] + " inc",
                  "", "%.1f s" % secs, "< 60 s", 0, "pass" if ok else "MISS"))
            continue
        errors = sum(int(r["errors"]) for r in runs)
        requests = sum(int(r["requests"]) for r in runs)
        if "samples_ms" in runs[0]:
            xs = [float(x) for r in runs for x in r["samples_ms"].split(",") if x]
            p50, p99, worst = pct(xs, 50), pct(xs, 99), max(xs)
            p99s = "%.2f [max %.1f]" % (p99, worst)
        else:
            p50 = statistics.median(float(r["p50_ms"]) for r in runs)
            p99 = statistics.median(float(r["p99_ms"]) for r in runs)
            worst = max(float(r["p99_ms"]) for r in runs)
            p99s = "%.2f [%.2f]" % (p99, worst)
        ok = p99 < targets[route] and errors == 0
        bad |= errors > 0
        missed |= not ok
        print("%-9s %-40s %8d %9.2f %20s %9s %6d %7s" % (store, names[route], requests, p50, p99s,
              "< %d ms" % targets[route], errors, "pass" if ok else "MISS"))
if pg_version:
    print("postgresql: %s" % pg_version)
sys.exit(1 if bad or (strict == "1" and missed) else 0)
PY
exit $failed
