#!/usr/bin/env bash
# Runs every test of the workspace, with the real services the tests need:
# Terraform (TERRAFORM_BIN, else `terraform` on PATH; see below) and a Redis server
# on a free loopback port (installed from Debian's packages when missing and
# running as root), Debian's postgresql (the tests start their own
# clusters), Debian's chromium and playwright-core (npm ci) for the
# dashboard's browser test, Debian's prometheus and prometheus-alertmanager
# for the monitoring loop test, the official MCP Python SDK (PyPI's `mcp`, in
# a virtualenv) for the MCP test, and moto (PyPI, in a virtualenv) as the AWS
# API emulator. Extra arguments go to `cargo test`.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

log() { printf '== %s\n' "$*" >&2; }

# --- Terraform -------------------------------------------------------------
# TERRAFORM_BIN when set, else `terraform` on PATH. As a convenience, when the
# offline helper of the surrounding checkout exists (../shared/tools/
# terraform-env.sh, or INFRAAI_TF_ENV_SCRIPT), it picks the binary and sets up
# its provider mirror instead (TF_CLI_CONFIG_FILE); CI gets Terraform that way.
tf_env="${INFRAAI_TF_ENV_SCRIPT:-$root/../shared/tools/terraform-env.sh}"
if [ -x "$tf_env" ]; then
  eval "$("$tf_env")"
  log "terraform: $TERRAFORM_BIN ($TERRAFORM_VERSION, from $tf_env)"
elif [ -n "${TERRAFORM_BIN:-}" ]; then
  export TERRAFORM_BIN
  log "terraform: $TERRAFORM_BIN (TERRAFORM_BIN)"
elif command -v terraform >/dev/null 2>&1; then
  TERRAFORM_BIN=$(command -v terraform); export TERRAFORM_BIN
  log "terraform: $TERRAFORM_BIN (PATH)"
else
  log "terraform: TERRAFORM_BIN is not set and no terraform on PATH; Terraform tests will fail"
fi

# --- Redis -----------------------------------------------------------------
apt_updated=""
apt_install() {
  if [ "$(id -u)" != 0 ]; then
    log "cannot install $* (not root)"; return 1
  fi
  if [ -z "$apt_updated" ]; then apt-get update -qq >/dev/null; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}
if [ -z "${INFRAAI_TEST_REDIS_URL:-}" ]; then
  command -v redis-server >/dev/null 2>&1 || apt_install redis-server || true
  if command -v redis-server >/dev/null 2>&1; then
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    redis_dir=$(mktemp -d)
    redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
      --dir "$redis_dir" --daemonize yes --pidfile "$redis_dir/redis.pid" --logfile "$redis_dir/redis.log"
    trap 'kill "$(cat "$redis_dir/redis.pid" 2>/dev/null)" 2>/dev/null || true; rm -rf "$redis_dir"' EXIT
    for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
    export INFRAAI_TEST_REDIS_URL="redis://127.0.0.1:$port/"
    log "redis: $INFRAAI_TEST_REDIS_URL"
  else
    log "redis: not available; Redis tests will fail"
  fi
fi

# --- PostgreSQL (the PostgreSQL store's tests) ------------------------------
# Debian's package; the tests (infraai-store/tests/postgres.rs, the server's
# api test) initialize and start throwaway clusters of their own on free
# loopback ports (as the postgres OS user when root) and stop them on drop.
pg_initdb() { ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -1 || true; }
[ -n "$(pg_initdb)" ] || command -v initdb >/dev/null 2>&1 \
  || apt_install --no-install-recommends postgresql || true
pg_bin=$(pg_initdb); pg_bin=${pg_bin:-$(command -v initdb || true)}
if [ -n "$pg_bin" ]; then
  log "postgresql: $("$(dirname "$pg_bin")/postgres" --version 2>&1 | head -1)"
else
  log "postgresql: not available; PostgreSQL tests will fail"
fi

# --- Chromium + playwright-core (the dashboard's browser test) --------------
# Debian's chromium (no browser download); playwright-core from the lock file.
command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || apt_install chromium || true
if [ -x /usr/bin/chromium ]; then
  log "chromium: $(/usr/bin/chromium --version 2>/dev/null || echo /usr/bin/chromium)"
else
  log "chromium: not available; the browser test will fail"
fi
browser_test="$root/examples/server/browser-test"
if command -v npm >/dev/null 2>&1; then
  (cd "$browser_test" && npm ci --no-audit --no-fund --loglevel=error >/dev/null) \
    || log "npm ci in $browser_test failed; the browser test will fail"
else
  log "npm: not found; the browser test will fail"
fi

# The dashboard's vendored CodeMirror bundle must be what its lock file builds.
editor_build="$root/examples/server/editor-build"
editor_stale=""
if command -v npm >/dev/null 2>&1; then
  if (cd "$editor_build" && npm ci --no-audit --no-fund --loglevel=error >/dev/null && npm run --silent check); then
    log "editor bundle: matches its build"
  else
    log "editor bundle: examples/server/assets/vendor/codemirror.js is not what editor-build builds (see its README)"
    editor_stale=1
  fi
else
  log "npm: not found; cannot check the editor bundle"; editor_stale=1
fi

# --- Prometheus + Alertmanager (the real monitoring loop test) --------------
# Debian's packages; the test (examples/server/tests/prometheus_loop.rs) starts
# both itself on free loopback ports, because their configuration needs the
# ports of the server and of the instance it deploys.
command -v prometheus >/dev/null 2>&1 || apt_install --no-install-recommends prometheus || true
command -v prometheus-alertmanager >/dev/null 2>&1 || command -v alertmanager >/dev/null 2>&1 \
  || apt_install --no-install-recommends prometheus-alertmanager || true
for bin in prometheus prometheus-alertmanager; do
  if command -v "$bin" >/dev/null 2>&1; then
    log "$bin: $("$bin" --version 2>&1 | head -1)"
  else
    log "$bin: not available; the Prometheus loop test will fail"
  fi
done
# --- The official MCP Python SDK (the MCP interface's test) -----------------
# PyPI's `mcp` (pinned in examples/server/mcp-test/requirements.txt) in a
# virtualenv of its own; examples/server/tests/mcp.rs drives the server with it.
mcp_test="$root/examples/server/mcp-test"
command -v python3 >/dev/null 2>&1 && { python3 -m venv --help >/dev/null 2>&1 || apt_install python3-venv || true; }
# A virtualenv moved or copied from elsewhere points at an interpreter that
# is gone: make it again.
[ ! -d "$mcp_test/.venv" ] || "$mcp_test/.venv/bin/pip" --version >/dev/null 2>&1 || rm -rf "$mcp_test/.venv"
if python3 -m venv "$mcp_test/.venv" >/dev/null 2>&1 \
  && "$mcp_test/.venv/bin/pip" install --quiet --disable-pip-version-check -r "$mcp_test/requirements.txt" >/dev/null; then
  log "mcp client: $("$mcp_test/.venv/bin/python" -c 'import importlib.metadata as m; print("mcp", m.version("mcp"))')"
else
  log "mcp client: cannot install the MCP Python SDK; the MCP test will fail"
fi
# --- An AWS API emulator (the AWS adapter's end-to-end tests) ----------------
# PyPI's moto in server mode (pinned in infraai-aws/tests/emulator/
# requirements.txt), in a virtualenv of its own; the tests start it on a
# free loopback port (INFRAAI_MOTO_SERVER) and stop it afterwards.
aws_emulator="$root/infraai-aws/tests/emulator"
[ ! -d "$aws_emulator/.venv" ] || "$aws_emulator/.venv/bin/pip" --version >/dev/null 2>&1 || rm -rf "$aws_emulator/.venv"
if python3 -m venv "$aws_emulator/.venv" >/dev/null 2>&1 \
  && "$aws_emulator/.venv/bin/pip" install --quiet --disable-pip-version-check -r "$aws_emulator/requirements.txt" >/dev/null; then
  export INFRAAI_MOTO_SERVER="$aws_emulator/.venv/bin/moto_server"
  log "aws emulator: $("$aws_emulator/.venv/bin/python" -c 'import importlib.metadata as m; print("moto", m.version("moto"))')"
else
  log "aws emulator: cannot install moto; the AWS emulator tests will fail"
fi
# ---------------------------------------------------------------------------

# Tests that need a real service fail, not skip, when it is missing here.
export INFRAAI_REQUIRE_SERVICES=1
# Local-cloud processes (demo services, and the PostgreSQL and Redis servers
# of its databases and caches: their working directory is their data
# directory, `pgdata` or one holding `redis.conf`) running before the tests
# are not ours; any other one still alive after them was leaked.
demo_pids() {
  local p exe cwd
  for p in /proc/[0-9]*; do
    exe=$(readlink "$p/exe" 2>/dev/null) || continue
    case "$exe" in
      *infraai-demo-service*) echo "${p#/proc/}" ;;
      */postgres|*/redis-server|*/redis-check-rdb) # Debian's redis-server is a link to redis-check-rdb
        cwd=$(readlink "$p/cwd" 2>/dev/null) || continue
        if [ "${cwd##*/}" = pgdata ] || [ -e "$cwd/redis.conf" ]; then echo "${p#/proc/}"; fi ;;
    esac
  done | sort
}
demo_before=$(demo_pids)
log "cargo test --workspace --all-features $*"
status=0
cargo test --workspace --all-features "$@" || status=$?
sleep 1
leaked=$(comm -13 <(echo "$demo_before") <(demo_pids) | grep . || true)
if [ -n "$leaked" ]; then
  log "local-cloud processes left running after the tests: $(echo $leaked)"
  for p in $leaked; do tr '\0' ' ' <"/proc/$p/cmdline" >&2 2>/dev/null; echo >&2; done
  kill $leaked 2>/dev/null || true
  [ "$status" != 0 ] || status=1
else
  log "no local-cloud process left running after the tests"
fi
# A short smoke of each benchmark of bench/ (SMOKE=1: seconds, small data)
# on the debug build the tests above made: each must run end to end and
# fails on an error, never on a figure (the benchmarks themselves run
# outside CI; see bench/README.md).
bin="${CARGO_TARGET_DIR:-$root/target}/debug"
for b in alert-breakdown api-at-scale decision-path deploy-overhead; do
  log "bench smoke: SMOKE=1 bench/$b.sh"
  SMOKE=1 SERVER_BIN="$bin/infraai-server" SEED_BIN="$bin/examples/seed_store" \
    "bench/$b.sh" || { log "bench smoke failed: bench/$b.sh"; status=1; }
done
log "bench smoke: bench/wal_frames.py"
SIZES=6 COMMITS=5 PREFILL=500 python3 bench/wal_frames.py ||
  { log "bench smoke failed: bench/wal_frames.py"; status=1; }
# The decision evaluation's table, gated against eval/baseline.json (the
# tests above gate it too; this prints the figures into the log).
log "cargo run -p infraai-eval -- --check"
cargo run -q -p infraai-eval -- --check || status=$?
[ -z "$editor_stale" ] || [ "$status" != 0 ] || status=1
exit "$status"
