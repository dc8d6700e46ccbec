# Shared by the bench scripts (sourced): logging, installing what is
# missing, free ports, and a work directory whose processes are stopped and
# which is removed on exit.
log() { printf '== %s\n' "$*" >&2; }

apt_updated=""
need() { # need <command> <debian package>: installs the package when the command is missing
  command -v "$1" >/dev/null 2>&1 && return 0
  if [ "$(id -u)" != 0 ]; then
    log "$1 is missing: install the Debian package $2 (or run this as root)"; exit 1
  fi
  if [ -z "$apt_updated" ]; then apt-get update -qq >/dev/null; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$2" >/dev/null
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# infraai-server in release: $SERVER_BIN, or built now.
server_binary() {
  if [ -n "${SERVER_BIN:-}" ]; then
    echo "$SERVER_BIN"
  else
    log "building infraai-server (release)"
    (cd "$root" && cargo build --release -q -p infraai-server)
    echo "${CARGO_TARGET_DIR:-$root/target}/release/infraai-server"
  fi
}

# The alert benchmarks' load unless the environment says otherwise, and the
# tools they drive it with.
alert_load() {
  RUNS=${RUNS:-3}
  DURATION=${DURATION:-10s}
  THREADS=${THREADS:-2}
  CONNECTIONS=${CONNECTIONS:-32}
  need wrk wrk
  need curl curl
  need python3 python3
}

wait_url() { # wait_url <url> <what>
  for _ in $(seq 150); do curl -fsS -o /dev/null "$1" 2>/dev/null && return 0; sleep 0.2; done
  log "$2 did not answer at $1"; exit 1
}

# Alertmanager (ALERTMANAGER_BIN, or Debian's, installed when missing), in
# memory, routing to no receiver; sets am_pid, am_port and am_version.
start_alertmanager() {
  if [ -z "${ALERTMANAGER_BIN:-}" ]; then
    if command -v prometheus-alertmanager >/dev/null 2>&1; then ALERTMANAGER_BIN=prometheus-alertmanager
    elif command -v alertmanager >/dev/null 2>&1; then ALERTMANAGER_BIN=alertmanager
    else need prometheus-alertmanager prometheus-alertmanager; ALERTMANAGER_BIN=prometheus-alertmanager
    fi
  fi
  am_port=$(free_port)
  cat > "$work/alertmanager.yml" <<YAML
route: {receiver: "null", group_by: [alertname]}
receivers: [{name: "null"}]
YAML
  "$ALERTMANAGER_BIN" --config.file="$work/alertmanager.yml" --storage.path="$work/am" \
    --web.listen-address="127.0.0.1:$am_port" --cluster.listen-address= \
    >"$work/alertmanager.log" 2>&1 &
  am_pid=$!
  pids+=("$am_pid")
  wait_url "http://127.0.0.1:$am_port/-/ready" alertmanager
  am_version=$("$ALERTMANAGER_BIN" --version 2>&1 | head -1)
}

# infraai-server ($server_bin) on a free loopback port, the simulated cloud,
# its SQLite store in <data dir>; sets server_pid and srv_port.
token=bench-webhook-token
start_server() { # start_server <data dir>
  srv_port=$(free_port)
  INFRAAI_WEBHOOK_TOKEN=$token INFRAAI_OPERATOR_TOKEN=bench-operator RUST_LOG=error \
    "$server_bin" --listen "127.0.0.1:$srv_port" --data-dir "$1" --cloud simulated \
    >>"$work/server.out" 2>>"$work/server.log" &
  server_pid=$!
  pids+=("$server_pid")
  wait_url "http://127.0.0.1:$srv_port/healthz" infraai-server
}

# CPU time (user + system, in clock ticks) a process has used so far.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

# One wrk run (THREADS, CONNECTIONS, DURATION; BENCH_TOKEN from $token): its
# RESULT line plus the CPU the process under test spent per answered
# request, in microseconds.
run_wrk() { # run_wrk <lua> <url> <run> <pid of the server under test>
  local t0 t1 out n
  t0=$(cpu_ticks "$4")
  out=$(BENCH_DIR="$bench" BENCH_RUN="$3" BENCH_TOKEN="${token:-}" \
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --timeout 10s -s "$bench/$1" "$2" \
    | grep '^RESULT') || { log "wrk failed against $2"; exit 1; }
  t1=$(cpu_ticks "$4")
  n=$(echo "$out" | sed 's/.*requests=\([0-9]*\).*/\1/')
  echo "$out cpu_us=$(( (t1 - t0) * 1000000 / hz / (n > 0 ? n : 1) ))"
}

work=$(mktemp -d)
pids=()
cleanup() {
  # A stopped process (see bench/alert-ingest.sh) must run again to end.
  for p in "${pids[@]}"; do kill -CONT "$p" 2>/dev/null || true; kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# A throwaway PostgreSQL cluster in $work/pg on a free loopback port, fsync
# on: Debian's postgresql (installed when missing, as root), run as the
# postgres OS user when root. Sets pg (its bin directory), pg_port, pg_pid
# and pg_version. pg_pid is postgres itself (setpriv execs it, no subshell in
# between), so stopping it stops the cluster.
as_pg() { if [ "$(id -u)" = 0 ]; then setpriv --reuid=postgres --regid=postgres --init-groups "$@"; else "$@"; fi; }
start_postgres() { # start_postgres <max_connections>
  pg=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  if [ -z "$pg" ]; then
    need initdb postgresql
    pg=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  fi
  chmod 711 "$work" # the postgres OS user reaches its directory inside
  mkdir "$work/pg"
  [ "$(id -u)" != 0 ] || chown postgres:postgres "$work/pg"
  as_pg "$pg/initdb" -D "$work/pg/data" -U postgres --auth=trust -E UTF8 --locale=C >/dev/null
  pg_port=$(free_port)
  local as=()
  [ "$(id -u)" != 0 ] || as=(setpriv --reuid=postgres --regid=postgres --init-groups)
  "${as[@]}" "$pg/postgres" -D "$work/pg/data" -p "$pg_port" -k "$work/pg" \
    -c listen_addresses=127.0.0.1 -c max_connections="$1" >"$work/pg.log" 2>&1 &
  pg_pid=$!
  pids+=("$pg_pid")
  for _ in $(seq 100); do "$pg/pg_isready" -q -h 127.0.0.1 -p "$pg_port" && break; sleep 0.1; done
  pg_version=$("$pg/postgres" --version)
}
